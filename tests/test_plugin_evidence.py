"""Tag with RAM's "Evidence maps" option and "where RAM sees <tag>", on a real FiftyOne and a tiny model."""
from __future__ import annotations

# ruff: noqa: I001  (fo_fixtures must be imported before fiftyone: it sets FiftyOne's config)

from pathlib import Path

import fo_fixtures as fx
import numpy as np
import pytest

import fiftyone as fo
import fiftyone.operators as foo
from plugin.errors import PluginInputError
from plugin.fo_evidence import EVIDENCE_SOURCE, where_ram_sees
from ram_model import TaggingEngine
from ram_model.evidence import evidence_for

pytestmark = pytest.mark.fiftyone

FIRED = ("dog", "cat", "sky")


@pytest.fixture(scope="module")
def thresholds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fx.write_thresholds(tmp_path_factory.mktemp("thr") / "fire.txt", {t: 0.0 for t in FIRED})


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return fx.write_images(tmp_path_factory.mktemp("ev_images"), 4)


@pytest.fixture()
def dataset(request, images) -> fo.Dataset:
    ds = fx.make_dataset(f"ev-{request.node.name}"[:60], images, labels=[["dog"], ["cat"], None, ["tree"]])
    yield ds
    ds.delete()


def _tag(dataset: fo.Dataset, params: dict) -> dict:
    return foo.execute_operator(fx.TAG_URI, {"dataset": dataset.name, "params": params}).result


def test_evidence_option_writes_boxes_and_a_heatmap_per_sample(dataset, tiny_files, thresholds) -> None:
    model = {**fx.model_params(tiny_files, thresholds=thresholds), "precision": "fp32"}
    result = _tag(dataset, {**model, "evidence": True})
    assert result["tagged"] == 4
    engine = TaggingEngine.from_config(tiny_files.engine_config(thresholds=str(thresholds), precision="fp32"))
    expected = evidence_for(engine, dataset.values("filepath"))
    for sample, pred in zip(dataset, expected):
        tags = [c.label for c in sample["ram"].classifications]
        boxes = sample["ram_evidence"].detections
        assert sorted(tags) == sorted(FIRED) and [d.label for d in boxes] == tags
        for det, ev in zip(boxes, sorted(pred.evidence, key=lambda e: tags.index(e.name))):
            assert det["source"] == EVIDENCE_SOURCE
            x0, y0, x1, y1 = ev.box
            assert det.bounding_box == pytest.approx([x0, y0, x1 - x0, y1 - y0])
            np.testing.assert_allclose(det["evidence_map"], ev.map, atol=1e-3)
        heat = sample["ram_heatmap"]
        assert isinstance(heat, fo.Heatmap) and list(heat.range) == [0.0, 1.0]
        np.testing.assert_allclose(heat.map, np.array(boxes[0]["evidence_map"]), atol=1e-6)  # the best tag's
    # a second run with the same settings resumes (skips everything); without evidence it refuses to mix
    assert _tag(dataset, {**model, "evidence": True})["skipped"] == 4
    fx.assert_failed(_tag(dataset, model), "evidence")  # other settings: refused, one line


def test_where_ram_sees_a_tag(dataset, tiny_files, thresholds) -> None:
    _tag(dataset, {**fx.model_params(tiny_files, thresholds=thresholds), "precision": "fp32", "evidence": True})
    view = where_ram_sees(dataset, "cat")
    assert len(view) == 4
    for sample in view:
        (det,) = sample["ram_evidence"].detections
        assert det.label == "cat"
        np.testing.assert_allclose(dataset[sample.id]["ram_heatmap"].map, np.array(det["evidence_map"]), atol=1e-6)
    with pytest.raises(PluginInputError, match="no 'bus'"):
        where_ram_sees(dataset, "bus")
    with pytest.raises(PluginInputError, match="Evidence maps"):
        where_ram_sees(dataset, "cat", field="other")


def test_evidence_of_a_run_computing_only_the_label_fields_tags(dataset, tiny_files, thresholds) -> None:
    """With a label field only its tags are computed (a restricted engine view): the maps are the full model's."""
    model = {**fx.model_params(tiny_files, thresholds=thresholds), "precision": "fp32"}
    _tag(dataset, {**model, "evidence": True, "label_field": "ground_truth"})
    engine = TaggingEngine.from_config(tiny_files.engine_config(thresholds=str(thresholds), precision="fp32"))
    expected = evidence_for(engine, dataset.values("filepath"), tags=["dog", "cat"])
    for sample, pred in zip(dataset, expected):
        boxes = {d.label: d for d in sample["ram_evidence"].detections}
        assert set(boxes) == {"dog", "cat"}  # sky fires on the whole vocabulary but is not computed here
        for ev in pred.evidence:
            np.testing.assert_allclose(boxes[ev.name]["evidence_map"], ev.map, atol=1e-3)
            assert boxes[ev.name].confidence == pytest.approx(ev.score, abs=1e-5)


def test_where_ram_sees_operator_runs_in_fiftyone(dataset, tiny_files, thresholds) -> None:
    _tag(dataset, {**fx.model_params(tiny_files, thresholds=thresholds), "precision": "fp32", "evidence": True})
    uri = f"{fx.PLUGIN_NAME}/where_ram_sees"
    result = foo.execute_operator(uri, {"dataset": dataset.name, "params": {"ram_field": "ram", "tag": "sky"}})
    assert result.error is None and result.result == {"samples": 4, "tag": "sky", "heatmap_field": "ram_heatmap"}
    for sample in dataset:
        (sky,) = [d for d in sample["ram_evidence"].detections if d.label == "sky"]
        np.testing.assert_allclose(sample["ram_heatmap"].map, np.array(sky["evidence_map"]), atol=1e-6)


def test_evidence_from_the_command_line(dataset, tiny_files, thresholds, capsys) -> None:
    from ram_model.cli.main import main

    flags = []
    for key, value in {**fx.model_params(tiny_files, thresholds=thresholds), "precision": "fp32"}.items():
        flags += [f"--{key.replace('_', '-')}", value]
    assert main(["fiftyone", "tag", "--dataset", dataset.name, "--evidence", "--no-progress", *flags]) == 0
    capsys.readouterr()
    assert all(sorted(d.label for d in e.detections) == sorted(FIRED) for e in dataset.values("ram_evidence"))
    assert all(isinstance(h, fo.Heatmap) for h in dataset.values("ram_heatmap"))
