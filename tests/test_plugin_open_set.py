"""Tag with RAM: label-field labels that map onto no RAM tag become open-set classes (issue 20).

Real FiftyOne (its own mongod) and the real operator; the tiny random RAM++ and CLIP text encoder."""
from __future__ import annotations

# ruff: noqa: I001  (fo_fixtures must be imported before fiftyone: it sets FiftyOne's config)

import fo_fixtures as fx
import numpy as np
import pytest

import fiftyone as fo
import fiftyone.operators as foo
from ram_model import TaggingEngine

pytestmark = pytest.mark.fiftyone

LABELS = [["dog"], ["scratch on the bumper"], ["dog", "Person without helmet"], []]


@pytest.fixture(scope="module")
def model(tiny_files) -> dict[str, str]:
    return {**fx.model_params(tiny_files), "text_encoder": "random:tiny", "precision": "fp32"}


@pytest.fixture()
def dataset(request, tmp_path) -> fo.Dataset:
    ds = fx.make_dataset(f"open-{request.node.name}"[:60], fx.write_images(tmp_path / "imgs", 4, seed=41),
                         labels=LABELS)
    yield ds
    ds.delete()


def _tag(dataset: fo.Dataset, params: dict) -> dict:
    return foo.execute_operator(fx.TAG_URI, {"dataset": dataset.name, "params": params}).result


def test_unmapped_labels_are_tagged_as_open_set_classes(dataset, model, tiny_files) -> None:
    result = _tag(dataset, {**model, "field": "ram", "label_field": "ground_truth", "threshold": 0.0})
    assert sorted(result["open_set_labels"]) == ["Person without helmet", "scratch on the bumper"]
    assert result["unmapped_labels"] == [] and "-open" in result["model_version"]
    engine = TaggingEngine.from_config(tiny_files.engine_config(precision="fp32", text_encoder="random:tiny"))
    expected = engine.open_set_view(["dog", "scratch on the bumper", "Person without helmet"]).predict_proba(
        dataset.values("filepath"))
    for label, row in zip(dataset.values("ram"), expected):
        got = {c.label: c.confidence for c in label.classifications}
        assert set(got) == {"dog", "scratch on the bumper", "Person without helmet"}  # threshold 0: all fire
        assert [got["dog"], got["scratch on the bumper"], got["Person without helmet"]] == pytest.approx(
            row.tolist(), abs=1e-5)
    config = dataset.get_run_info("ram_tag_ram").config
    assert config.computed_classes == ["dog", *result["open_set_labels"]]
    scores = np.array(dataset.values("ram_scores"))
    assert scores.shape == (4, 3) and np.isfinite(scores).all()


def test_open_set_labels_can_be_turned_off(dataset, model) -> None:
    result = _tag(dataset, {**model, "field": "ram", "label_field": "ground_truth", "threshold": 0.0,
                            "open_set_labels": False})
    assert result["open_set_labels"] == []
    assert sorted(result["unmapped_labels"]) == ["Person without helmet", "scratch on the bumper"]
    assert {c.label for label in dataset.values("ram") for c in label.classifications} == {"dog"}
