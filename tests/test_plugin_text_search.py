"""Free-text queries on the RAM similarity index (issue 20): any text through CLIP's text encoder.

Real FiftyOne (its own mongod), the real Compute RAM similarity operator and the App's path
(a fresh dataset object, the model rebuilt from the zoo entry and its options).
"""
from __future__ import annotations

# ruff: noqa: I001  (fo_fixtures must be imported before fiftyone: it sets FiftyOne's config)


import fo_fixtures as fx
import numpy as np
import pytest

import fiftyone as fo
import fiftyone.operators as foo
from plugin.models.fo_model import RamModel
from ram_model import TaggingEngine
from ram_model.text import load_text_encoder

pytestmark = [pytest.mark.fiftyone, pytest.mark.usefixtures("forget_zoo_source")]

SIM_URI = f"{fx.PLUGIN_NAME}/compute_ram_similarity"


@pytest.fixture(scope="module")
def model(tiny_files) -> dict[str, str]:
    return {**fx.model_params(tiny_files), "text_encoder": "random:tiny"}


@pytest.fixture()
def dataset(request, tmp_path) -> fo.Dataset:
    ds = fx.make_dataset(f"txt-{request.node.name}"[:60], fx.write_images(tmp_path / "imgs", 6, seed=31))
    yield ds
    ds.delete()


def test_prompts_mix_tag_names_and_free_text(model, tiny_files) -> None:
    engine = TaggingEngine.from_config(tiny_files.engine_config())
    got = RamModel(model).embed_prompts(["dog", "a dog on a beach", "dog"])
    tags = engine.tag_embeddings()
    np.testing.assert_allclose(got[0], tags[engine.vocab.index_of("dog")], rtol=1e-6)
    np.testing.assert_allclose(got[1], load_text_encoder("random:tiny").encode(["a dog on a beach"])[0].numpy(),
                               rtol=1e-6)
    np.testing.assert_array_equal(got[0], got[2])


def test_sort_by_similarity_with_free_text(dataset, model) -> None:
    result = foo.execute_operator(SIM_URI, {"dataset": dataset.name, "params": model}).result
    assert result["text_queries"] and "any text" in result["text_query_note"]
    fresh = fo.load_dataset(dataset.name)  # what the App does: the index rebuilds the model from the zoo entry
    ranked = fresh.sort_by_similarity("a dog on a beach", k=6, brain_key="ram_sim").values("id")
    vectors = np.stack(dataset.values("ram_embedding"))
    query = load_text_encoder("random:tiny").encode(["a dog on a beach"])[0].numpy()
    cosine = vectors @ query / np.linalg.norm(vectors, axis=1)
    assert ranked == [dataset.values("id")[i] for i in np.argsort(-cosine)]
