"""Compute RAM similarity: embeddings, a Brain index the App can sort by, and text queries by tag name."""
from __future__ import annotations

# ruff: noqa: I001  (fo_fixtures must be imported before fiftyone: it sets FiftyOne's config)


import fo_fixtures as fx
import numpy as np
import pytest

import fiftyone as fo
import fiftyone.operators as foo
from plugin.jobs.similarity_recall import tag_query_recall
from ram_model import TaggingEngine

pytestmark = [pytest.mark.fiftyone, pytest.mark.usefixtures("forget_zoo_source")]

SIM_URI = f"{fx.PLUGIN_NAME}/compute_ram_similarity"
LABELS = [["dog"], ["cat"], ["dog", "car"], ["car"], ["tree"], ["dog"], ["cat", "tree"], ["tree"], ["car"], ["cat"]]
KS = (1, 3, 5)


@pytest.fixture(scope="module")
def model(tiny_files) -> dict[str, str]:
    return fx.model_params(tiny_files)


@pytest.fixture(scope="module")
def engine(tiny_files) -> TaggingEngine:
    return TaggingEngine.from_config(tiny_files.engine_config())


@pytest.fixture()
def dataset(request, tmp_path) -> fo.Dataset:
    images = fx.write_images(tmp_path / "imgs", len(LABELS) - 1, seed=21) + [tmp_path / "missing.jpg"]
    ds = fx.make_dataset(f"sim-{request.node.name}"[:60], images, labels=LABELS)
    yield ds
    ds.delete()


def _similarity(dataset: fo.Dataset, params: dict) -> dict:
    return foo.execute_operator(SIM_URI, {"dataset": dataset.name, "params": params}).result


def test_embeddings_index_and_resume(dataset, model, engine) -> None:
    result = _similarity(dataset, model)
    assert (result["embedded"], result["failed"], result["indexed"], result["text_queries"]) == (9, 1, 9, True)
    expected = [p.embedding for p in engine.predict(dataset.values("filepath")[:9], with_embedding=True)]
    np.testing.assert_allclose(np.stack(dataset.values("ram_embedding")[:9]), np.stack(expected), rtol=1e-4, atol=1e-5)
    info = dataset.get_brain_info("ram_sim").config
    assert (info.method, info.metric, info.embeddings_field, info.supports_prompts) == (
        "sklearn", "cosine", "ram_embedding", True)
    # Image query: the nearest sample to a sample is itself.
    first = dataset.first().id
    assert dataset.sort_by_similarity(first, k=1, brain_key="ram_sim").first().id == first
    again = _similarity(dataset, model)  # same model: only the unreadable sample is tried again
    assert (again["skipped"], again["embedded"], again["failed"]) == (9, 0, 1)


def test_text_query_ranks_by_the_tags_embedding(dataset, model, engine) -> None:
    """The App's path (a new index object, the model rebuilt from the zoo entry) ranks by cosine to the tag."""
    _similarity(dataset, model)
    fresh = fo.load_dataset(dataset.name)
    ranked = fresh.sort_by_similarity("dog", k=9, brain_key="ram_sim").values("id")
    vectors = np.stack(dataset.values("ram_embedding")[:9])
    query = engine.tag_embeddings()[engine.vocab.index_of("dog")]
    cosine = vectors @ query / np.linalg.norm(vectors, axis=1) / np.linalg.norm(query)
    assert ranked == [dataset.values("id")[i] for i in np.argsort(-cosine)]


def test_recall_at_k_of_tag_queries(dataset, model) -> None:
    """Tiny random weights: recall is chance-level, reported not asserted. With embeddings placed near
    their tags' embeddings (what an aligned model gives), the same path retrieves every relevant image."""
    _similarity(dataset, model)
    tiny = tag_query_recall(dataset, "ram_sim", "ground_truth", KS)
    print("tiny random-weight model:", tiny.recall_at_k, "chance:", tiny.chance_at_k)
    assert tiny.queries == ["car", "cat", "dog", "tree"] and set(tiny.recall_at_k) == set(KS)

    model_obj = dataset.load_brain_results("ram_sim").get_model()
    rng = np.random.default_rng(0)
    planted = {}
    for sample_id, labels in zip(dataset.values("id"), LABELS):
        centre = model_obj.embed_prompts(labels).mean(axis=0)
        planted[sample_id] = centre + rng.normal(0, 1e-3 * np.linalg.norm(centre), centre.shape)
    dataset.set_values("ram_embedding", planted, key_field="id")
    dataset.delete_brain_run("ram_sim")
    import fiftyone.brain as fob

    fob.compute_similarity(dataset, embeddings="ram_embedding", brain_key="ram_sim", backend="sklearn",
                           model="ram-annotate/ram-checkpoint", model_kwargs={k: v for k, v in model.items()})
    aligned = tag_query_recall(dataset, "ram_sim", "ground_truth", KS)
    assert aligned.recall_at_k[5] == 1.0 and aligned.recall_at_k[1] > tiny.chance_at_k[1]


def test_someone_elses_field_is_not_overwritten(dataset, model) -> None:
    dataset.set_values("ram_embedding", [[0.0, 1.0]] * len(dataset))
    fx.assert_failed(_similarity(dataset, model), "not written by Compute RAM similarity")
    assert dataset.values("ram_embedding")[0] == [0.0, 1.0]
