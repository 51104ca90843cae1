"""RAM as a FiftyOne model (`apply_model`, `compute_embeddings`, prompts) and its model-zoo source."""
from __future__ import annotations

# ruff: noqa: I001  (fo_fixtures must be imported before fiftyone: it sets FiftyOne's config)

import functools
import http.server
import shutil
import threading
from pathlib import Path

import fo_fixtures as fx
from plugin_fixtures import FIRED
import numpy as np
import pytest

import fiftyone as fo
import fiftyone.zoo as foz
from plugin.errors import PluginInputError
from plugin.models.fo_model import RamModel

pytestmark = pytest.mark.fiftyone

ZOO_DIR = fx.REPO_ROOT / "plugin" / "zoo"


@pytest.fixture()
def dataset(request, tmp_path) -> fo.Dataset:
    ds = fx.make_dataset(f"fom-{request.node.name}"[:60], fx.write_images(tmp_path / "imgs", 5, seed=5))
    yield ds
    ds.delete()


def test_apply_model_writes_rams_tags_and_logits(dataset, fired_params, fired_engine) -> None:
    dataset.apply_model(RamModel(fired_params), "ram", store_logits=True, batch_size=2)
    expected = fired_engine.predict(dataset.values("filepath"))
    for label, prediction in zip(dataset.values("ram"), expected):
        assert [c.label for c in label.classifications] == sorted(
            FIRED, key=lambda t: -prediction.probs[fired_engine.vocab.index_of(t)])
        for c in label.classifications:
            np.testing.assert_allclose(c.confidence, prediction.probs[fired_engine.vocab.index_of(c.label)], rtol=1e-5)
        probs = 1 / (1 + np.exp(-np.asarray(label.logits, dtype=np.float64)))
        np.testing.assert_allclose(probs, prediction.probs, atol=1e-5)
        assert label.model_version == fired_engine.model_version


def test_compute_embeddings_gives_rams_pooled_embedding(dataset, fired_params, fired_engine) -> None:
    dataset.compute_embeddings(RamModel(fired_params), embeddings_field="ram_embedding", batch_size=3)
    expected = np.stack([p.embedding for p in fired_engine.predict(dataset.values("filepath"), with_embedding=True)])
    got = np.stack(dataset.values("ram_embedding"))
    assert got.shape == (5, 512)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_prompts_are_tag_embeddings(fired_params, fired_engine, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # free text needs CLIP's weights, absent here
    model = RamModel(fired_params)
    tags = fired_engine.tag_embeddings()
    label_embed = fired_engine.model.label_embed.detach().numpy().reshape(len(fired_engine.vocab), -1, 512)
    np.testing.assert_allclose(tags, label_embed.mean(axis=1), rtol=1e-5, atol=1e-6)  # RAM++: descriptions' mean
    got = model.embed_prompts(["dog", "Cats", "street_sign"])  # matched like labels: case, plural, separators
    np.testing.assert_allclose(got, tags[[fired_engine.vocab.index_of(t) for t in ("dog", "cat", "street sign")]],
                               rtol=1e-6)
    with pytest.raises(PluginInputError, match="Not RAM tags.*hf download openai/clip-vit-base-patch16"):
        model.embed_prompt("a dog on a beach")


def test_misspelt_option_is_an_error(fired_params) -> None:
    with pytest.raises(PluginInputError, match="thresold"):
        RamModel({**fired_params, "thresold": 0.5})


@pytest.fixture(scope="module")
def zoo_source(tmp_path_factory):
    """The zoo folder as an archive on a loopback HTTP server: FiftyOne registers sources by URL."""
    root = tmp_path_factory.mktemp("zoo_http")
    shutil.make_archive(str(root / "ram-annotate-zoo"), "zip", root_dir=ZOO_DIR.parent, base_dir=ZOO_DIR.name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/ram-annotate-zoo.zip"
    foz.register_zoo_model_source(url, overwrite=True)  # replaces a copy Compute RAM similarity installed
    yield url
    foz.delete_zoo_model_source(url)
    server.shutdown()


def test_zoo_source_lists_the_models(zoo_source) -> None:
    assert zoo_source in foz.list_zoo_model_sources()
    names = set(foz.list_zoo_models(source=zoo_source))
    assert {"ram-annotate/ram_plus_swin_large_14m", "ram-annotate/ram_swin_large_14m",
            "ram-annotate/ram-checkpoint"} <= names


def test_zoo_download_offline_names_the_hub_repo_and_command(zoo_source, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(Exception, match=r"xinyu1205/recognize_anything_model.*hf download"):
        foz.load_zoo_model("ram-annotate/ram_swin_large_14m")


def test_zoo_model_with_a_pre_placed_checkpoint_loads_and_tags(zoo_source, tiny_files, fired_thresholds, dataset,
                                                                fired_engine) -> None:
    name = "ram-annotate/ram_plus_swin_large_14m"
    path = Path(foz.get_zoo_model(name).get_path_in_dir(fo.config.model_zoo_dir))
    shutil.copyfile(tiny_files.checkpoint, path)  # as a user copies a file fetched elsewhere
    try:
        options = fx.model_params(tiny_files, thresholds=fired_thresholds)
        del options["checkpoint"]
        model = foz.load_zoo_model(name, **options)
        assert isinstance(model, RamModel) and model.model_version == fired_engine.model_version
        dataset.apply_model(model, "ram")
        assert all({c.label for c in label.classifications} == set(FIRED) for label in dataset.values("ram"))
    finally:
        path.unlink()


def test_zoo_entry_for_any_checkpoint_downloads_nothing(zoo_source, fired_params, fired_engine) -> None:
    model = foz.load_zoo_model("ram-annotate/ram-checkpoint", **fired_params)
    assert model.model_version == fired_engine.model_version
    with pytest.raises(PluginInputError, match="checkpoint="):
        foz.load_zoo_model("ram-annotate/ram-checkpoint", cache=False)
