"""Find disagreements through FiftyOne's operator execution, with thresholds chosen so the flags are known.

The tiny model's probabilities are random but fixed; the test reads them from an engine of
its own and places the thresholds far around them: "dog" fires on every image and "cat" on
none, each with odds of at least 1000:1 after threshold centring (sure enough for the
review core's flip posterior to pass 0.5 with its prior noise rate); every other tag is
uninformative (threshold 1.0). So with these labels the flags are:
sample 0 ["cat"] -> dog missing, cat wrong; 2 ["dog", "cat"] -> cat wrong; 3 [] -> dog
missing; 1 and 5 agree; 4 is unlabelled and skipped.
"""
from __future__ import annotations

# ruff: noqa: I001  (fo_fixtures must be imported before fiftyone: it sets FiftyOne's config)

from pathlib import Path

import fo_fixtures as fx
import numpy as np
import pytest

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators.executor import ExecutionError, ExecutionRunState
from ram_model import TaggingEngine
from ram_model.weights.testing import TINY_TAGS

pytestmark = pytest.mark.fiftyone

LABELS = [["cat"], ["dog"], ["dog", "cat"], [], None, ["unicorn", "dog"]]
EXPECT_MISSING = {0: ["dog"], 3: ["dog"]}
EXPECT_WRONG = {0: ["cat"], 2: ["cat"]}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return fx.write_images(tmp_path_factory.mktemp("dis_images"), len(LABELS), seed=5)


@pytest.fixture(scope="module")
def model(tiny_files, images, tmp_path_factory) -> dict[str, str]:
    probe = TaggingEngine.from_config(tiny_files.engine_config())
    probs = np.stack([p.probs for p in probe.predict([str(p) for p in images])])
    dog, cat = probs[:, TINY_TAGS.index("dog")], probs[:, TINY_TAGS.index("cat")]
    path = tmp_path_factory.mktemp("thr") / "dog_always_cat_never.txt"
    fx.write_thresholds(path, {"dog": float(dog.min()) / 1000, "cat": 1.0 - (1.0 - float(cat.max())) / 1000})
    return fx.model_params(tiny_files, thresholds=path)


@pytest.fixture()
def dataset(request, images) -> fo.Dataset:
    ds = fx.make_dataset(f"dis-{request.node.name}"[:60], images, labels=LABELS)
    yield ds
    ds.delete()


def _run(uri: str, dataset: fo.Dataset, params: dict) -> dict:
    return foo.execute_operator(uri, {"dataset": dataset.name, "params": params}).result


def _tag(dataset: fo.Dataset, model: dict, **params) -> None:
    _run(fx.TAG_URI, dataset, {**model, **params})


def _flags(dataset: fo.Dataset, field: str) -> dict[int, list[str]]:
    ids = dataset.values("id")
    out = {}
    for sample in dataset.exists(field):
        names = [c.label for c in sample[field].classifications]
        if names:
            out[ids.index(sample.id)] = names
    return out


def _assert_expected_flags(dataset: fo.Dataset, prefix: str) -> None:
    assert _flags(dataset, f"{prefix}_missing") == EXPECT_MISSING
    assert _flags(dataset, f"{prefix}_wrong") == EXPECT_WRONG


def test_flags_scores_saved_view_and_counts(dataset, model) -> None:
    _tag(dataset, model, field="ram", label_field="ground_truth")
    result = _run(fx.DISAGREE_URI, dataset, {"ram_field": "ram", "label_field": "ground_truth"})
    _assert_expected_flags(dataset, "ram_vs_ground_truth")
    assert result["score_source"] == "stored_scores"
    assert (result["samples"], result["compared"], result["unlabeled"], result["untagged"]) == (6, 5, 1, 0)
    assert (result["flagged_samples"], result["missing_tags"], result["wrong_tags"]) == (3, 2, 2)
    assert result["unmapped_labels"] == ["unicorn"]
    assert {row["label"]: (row["missing"], row["doubtful"]) for row in result["classes"]} == {
        "cat": (0, 2), "dog": (2, 0)}

    view = dataset.load_saved_view(result["saved_view"])
    scores = view.values("ram_vs_ground_truth_score")
    assert len(view) == 5 and scores == sorted(scores, reverse=True)
    ids = dataset.values("id")
    assert ids.index(view.first().id) == 0  # two flags outrank one
    flagged = {ids.index(i) for i in view.limit(3).values("id")}
    assert flagged == {0, 2, 3}
    assert all(s < 0.5 for s in view.skip(3).values("ram_vs_ground_truth_score"))
    missing_scores = [c.confidence for c in dataset.first()["ram_vs_ground_truth_missing"].classifications]
    assert all(0.5 < s <= 1.0 for s in missing_scores)
    assert dataset.has_run("ram_review_ram_vs_ground_truth")


def test_without_stored_scores_the_tag_confidences_give_the_same_flags(dataset, model) -> None:
    _tag(dataset, model, field="ram")
    result = _run(fx.DISAGREE_URI, dataset, {"ram_field": "ram", "label_field": "ground_truth"})
    assert result["score_source"] == "stored_tags"
    _assert_expected_flags(dataset, "ram_vs_ground_truth")


@pytest.mark.parametrize("kind", ["detections", "classification_per_sample", "sample_tags"])
def test_detections_and_sample_tags_count_as_present_tags(dataset, model, kind) -> None:
    if kind == "sample_tags":
        for sample, labels in zip(dataset, LABELS):
            sample.tags = list(labels or [])
            sample.save()
        field = "tags"
        expected_compared = 6  # sample tags always exist; an empty list means "none of these"
    elif kind == "detections":
        field = "boxes"
        dataset.set_values(field, [None if labels is None else fo.Detections(detections=[
            fo.Detection(label=name, bounding_box=[0.1, 0.1, 0.5, 0.5]) for name in labels]) for labels in LABELS])
        expected_compared = 5
    else:
        field = "single"
        dataset.set_values(field, [fo.Classification(label=labels[-1]) if labels else None for labels in LABELS])
        expected_compared = 4
    _tag(dataset, model, field="ram", label_field=field)
    result = _run(fx.DISAGREE_URI, dataset, {"ram_field": "ram", "label_field": field, "output": "check"})
    assert result["compared"] == expected_compared
    if kind == "classification_per_sample":
        # one label per sample: 0 -> "cat", 1 -> "dog", 2 -> "cat", 5 -> "dog"
        assert _flags(dataset, "check_missing") == {0: ["dog"], 2: ["dog"]}
        assert _flags(dataset, "check_wrong") == {0: ["cat"], 2: ["cat"]}
    else:
        extra_missing = {4: ["dog"]} if kind == "sample_tags" else {}
        assert _flags(dataset, "check_missing") == {**EXPECT_MISSING, **extra_missing}
        assert _flags(dataset, "check_wrong") == EXPECT_WRONG


def test_unsupported_label_type_is_a_clear_error(dataset, model) -> None:
    _tag(dataset, model, field="ram")
    dataset.set_values("caption", ["a dog"] * len(dataset))
    with pytest.raises(ExecutionError):  # refused by the form's validation, before `execute`
        _run(fx.DISAGREE_URI, dataset, {"ram_field": "ram", "label_field": "caption"})
    dataset.set_values("mask", [fo.Segmentation(mask=np.zeros((2, 2), dtype=np.uint8))] * len(dataset))
    from plugin.jobs.disagreements import find_sample_disagreements
    from plugin.params import DisagreementParams

    with pytest.raises(ValueError, match="holds Segmentation"):
        find_sample_disagreements(dataset, DisagreementParams(label_field="mask"))
    assert not dataset.has_sample_field("ram_vs_mask_score")


def test_a_ram_field_without_a_tag_run_is_refused(dataset) -> None:
    with pytest.raises(ExecutionError, match="Tag with RAM"):  # the form's validation, before `execute`
        _run(fx.DISAGREE_URI, dataset, {"ram_field": "ram", "label_field": "ground_truth"})


def test_fields_the_user_owns_are_not_overwritten(dataset, model) -> None:
    _tag(dataset, model, field="ram")
    dataset.set_values("ram_vs_ground_truth_score", [42.0] * len(dataset))
    fx.assert_failed(_run(fx.DISAGREE_URI, dataset, {"ram_field": "ram", "label_field": "ground_truth"}),
                     "not written by Find disagreements")
    assert dataset.values("ram_vs_ground_truth_score") == [42.0] * len(dataset)
    _run(fx.DISAGREE_URI, dataset, {"ram_field": "ram", "label_field": "ground_truth", "overwrite": True})
    _assert_expected_flags(dataset, "ram_vs_ground_truth")


def test_rerun_replaces_its_own_outputs(dataset, model) -> None:
    _tag(dataset, model, field="ram", label_field="ground_truth")
    first = _run(fx.DISAGREE_URI, dataset, {"ram_field": "ram", "label_field": "ground_truth"})
    second = _run(fx.DISAGREE_URI, dataset, {"ram_field": "ram", "label_field": "ground_truth"})
    assert first == second
    _assert_expected_flags(dataset, "ram_vs_ground_truth")


def test_delegated_run(dataset, model) -> None:
    _tag(dataset, model, field="ram", label_field="ground_truth")
    operation = fx.run_delegated(fx.DISAGREE_URI, dataset, {"ram_field": "ram", "label_field": "ground_truth"})
    assert operation.run_state == ExecutionRunState.COMPLETED, operation.result
    assert operation.result.result["flagged_samples"] == 3
    _assert_expected_flags(dataset, "ram_vs_ground_truth")
    assert dataset.has_saved_view(operation.result.result["saved_view"])


def test_zero_samples_is_a_clear_error(dataset, model) -> None:
    _tag(dataset, model, field="ram")
    fx.assert_failed(foo.execute_operator(fx.DISAGREE_URI, {"view": dataset.limit(0), "params": {
        "ram_field": "ram", "label_field": "ground_truth", "view_target": "CURRENT_VIEW"}}).result, "no samples")
    assert not dataset.has_sample_field("ram_vs_ground_truth_score")


def test_a_run_that_flags_nothing_says_why(images, model) -> None:
    agreeing = fx.make_dataset("dis-agreeing", images, labels=[["dog"]] * len(images))  # what RAM fires here
    try:
        _tag(agreeing, model, field="ram", label_field="ground_truth")
        result = _run(fx.DISAGREE_URI, agreeing, {"ram_field": "ram", "label_field": "ground_truth"})
        assert result["flagged_samples"] == 0
        assert result["why_none"].startswith("no sample was flagged") and "random-weight" in result["why_none"]
    finally:
        agreeing.delete()
