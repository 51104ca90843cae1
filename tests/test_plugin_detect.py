"""Detect RAM's tags on real FiftyOne datasets: the operator (immediate and delegated) and its CLI twin,
with RAM random:tiny-style files, a tiny random detector and SAM (fp32)."""
from __future__ import annotations

# ruff: noqa: I001  (fo_fixtures must be imported before fiftyone: it sets FiftyOne's config)

import json
from pathlib import Path

import fo_fixtures as fx
import pytest

pytest.importorskip("transformers")

import fiftyone as fo  # noqa: E402
import fiftyone.operators as foo  # noqa: E402

from ram_model.cli.main import main  # noqa: E402

pytestmark = pytest.mark.fiftyone

DETECT_URI = f"{fx.PLUGIN_NAME}/detect_with_ram"
FIRED = ("dog", "cat")


@pytest.fixture(scope="module")
def model(tiny_files, tmp_path_factory) -> dict[str, str]:
    thresholds = fx.write_thresholds(tmp_path_factory.mktemp("thr") / "t.txt", {t: 0.0 for t in FIRED})
    return {**fx.model_params(tiny_files, thresholds=thresholds), "precision": "fp32"}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    paths = fx.write_images(tmp_path_factory.mktemp("det_images"), 4, size=64)
    broken = paths[0].parent / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    return paths + [broken]


@pytest.fixture()
def dataset(request, images) -> fo.Dataset:
    labels = [["Dog"], ["Kitty"], None, [], None]
    ds = fx.make_dataset(f"det-{request.node.name}"[:60], images, labels=labels)
    yield ds
    ds.delete()


def test_operator_writes_detections_with_masks_and_resumes(dataset: fo.Dataset, model) -> None:
    params = {**model, "field": "boxes", "detector": "random:tiny", "segmenter": "random:tiny"}
    result = foo.execute_operator(DETECT_URI, {"dataset": dataset.name, "params": params}).result
    assert (result["detected"], result["failed"], result["skipped"]) == (4, 1, 0)
    assert result["model_version"].startswith("random-") and result["boxes"] > 0
    assert "not a recognised image" in result["failures"][0]["error"]
    for sample in dataset:
        if sample.filepath.endswith("broken.jpg"):
            assert sample["boxes"] is None
            continue
        dets = sample["boxes"]
        assert dets.model_version == result["model_version"]
        for d in dets.detections:
            x, y, w, h = d.bounding_box
            assert d.label in FIRED and 0 <= x <= 1 and 0 <= y <= 1 and w >= 0 and h >= 0 and 0 <= d.confidence <= 1
            assert d.mask is not None and d.mask.ndim == 2  # cropped to the box
            assert abs(d.mask.shape[1] - w * 64) <= 2 and abs(d.mask.shape[0] - h * 64) <= 2
    again = foo.execute_operator(DETECT_URI, {"dataset": dataset.name, "params": params}).result
    assert (again["detected"], again["skipped"], again["failed"]) == (0, 4, 1)
    # Other settings into the same field: refused unless overwrite.
    other = {**params, "box_threshold": 0.9}
    fx.assert_failed(foo.execute_operator(DETECT_URI, {"dataset": dataset.name, "params": other}).result,
                     "other models or settings")
    redone = foo.execute_operator(DETECT_URI, {"dataset": dataset.name, "params": {**other, "overwrite": True}}).result
    assert redone["detected"] == 4


def test_delegated_with_a_label_field(dataset: fo.Dataset, model) -> None:
    """Only tags that map onto the label field's classes are prompted; boxes carry the class names."""
    params = {**model, "field": "gt_boxes", "detector": "random:tiny", "label_field": "ground_truth"}
    done = fx.run_delegated(DETECT_URI, dataset, params)
    assert done.run_state == "completed", done.result
    labels = {d.label for s in dataset if s["gt_boxes"] is not None for d in s["gt_boxes"].detections}
    assert labels and labels <= {"Dog"}  # "Kitty" maps onto no RAM tag; dog -> Dog


def test_cli_twin(dataset: fo.Dataset, model, capsys) -> None:
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in model.items()]
    argv = ["fiftyone", "detect", "--dataset", dataset.name, "--field", "cli_boxes", "--detector", "random:tiny",
            "--no-progress", *flags]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["detected"] == 4 and out["field"] == "cli_boxes"
    assert main(["fiftyone", "detect", "--dataset", "no-such-dataset", "--detector", "random:tiny", *flags]) == 2
    # The disagreements twin needs boxes on both sides: a Classifications field is one line, exit 2.
    capsys.readouterr()
    assert main(["fiftyone", "detect-disagreements", "--dataset", dataset.name, "--pred-field", "cli_boxes",
                 "--gt-field", "ground_truth", "--no-progress"]) == 2
    assert "must be an fo.Detections field" in capsys.readouterr().err


def test_detection_disagreements(images, model) -> None:
    """FiftyOne's matching flags confident unmatched detections (likely missing) and unmatched existing boxes
    (likely wrong; 1.0 when RAM sees that label nowhere in the image), ranked in a saved view."""
    from plugin.jobs.detect import DetectParams, detect_samples, get_labeler
    from plugin.jobs.detect_disagreements import DetectDisagreementResult
    from plugin.models.engine_cache import engine_config
    from plugin.params import ModelParams

    ds = fx.make_dataset("det-disagree", images[:4])
    for sample in ds:
        sample["gt"] = fo.Detections(detections=[fo.Detection(label="Dog", bounding_box=[0.1, 0.1, 0.3, 0.3]),
                                                 fo.Detection(label="Unicorn", bounding_box=[0.5, 0.5, 0.2, 0.2])])
        sample.save()
    try:
        options = ModelParams.from_mapping(model)
        params = DetectParams(field="pred", detector="random:tiny", label_field="gt",
                              policy=options.options.threshold_policy())
        detect_samples(ds, get_labeler(engine_config(options), params), params)
        # Through the operator, as the App runs it (the job function is what it calls).
        answer = foo.execute_operator(f"{fx.PLUGIN_NAME}/find_ram_detection_disagreements", {
            "dataset": ds.name, "params": {"pred_field": "pred", "gt_field": "gt", "min_score": 0.3}})
        result = DetectDisagreementResult(**answer.result)
        assert result.flagged_samples == 4 and result.likely_wrong >= 4
        for sample in ds:
            wrong = {d.label: d.confidence for d in sample[result.wrong_field].detections}
            assert wrong["Unicorn"] == 1.0  # no RAM tag maps onto it: never detected
            for d in sample[result.missing_field].detections:
                assert d.label == "Dog" and d.confidence >= 0.3
            preds = sample["pred"].detections
            assert len(sample[result.missing_field].detections) == sum(
                1 for d in preds if d[f"{result.saved_view}_eval"] == "fp" and d.confidence >= 0.3)
        view = ds.load_saved_view(result.saved_view)
        ranked = view.values(result.score_field)
        assert ranked == sorted(ranked, reverse=True) and len(ranked) == 4
    finally:
        ds.delete()
