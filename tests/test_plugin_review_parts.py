"""The review round's pieces that need no server: task format, review reading, params, training labels."""
from __future__ import annotations

# ruff: noqa: I001  (fo_fixtures must be imported before fiftyone: it sets FiftyOne's config)

import socket

import fo_fixtures  # noqa: F401  (FiftyOne's test configuration, before plugin.jobs imports fiftyone)
import numpy as np
import pytest

from plugin.errors import PluginInputError
from plugin.review_round.review_data import ReviewedData
from plugin.review_round.send_review import _upload_batches
from ram_client.labelstudio.client import LabelStudioClient, LabelStudioError
from ram_client.labelstudio.tasks import (SAMPLE_ID_KEY, SUGGESTION_KEY, choices_config, config_choices,
                                          local_files_url, ram_prediction, read_review, suggested_labels)
from plugin.review_round.params import LabelStudioSettings, SendReviewParams
from ram_model.review import build_label_mapping
from ram_model.weights.testing import TINY_TAGS

pytestmark = pytest.mark.fiftyone


def _annotation(id_: int, choices: list[str], updated: str, **extra: object) -> dict:
    return {"id": id_, "completed_by": 3, "updated_at": updated, "was_cancelled": False,
            "result": [{"from_name": "tags", "to_name": "image", "type": "choices", "value": {"choices": choices}},
                       {"from_name": "comment", "to_name": "image", "type": "textarea", "value": {"text": ["x"]}}],
            **extra}


def test_choices_config_round_trips_awkward_label_names() -> None:
    names = ['say "cheese"', "<b>", "a & b", "dog"]
    assert config_choices(choices_config(names)) == sorted(names)
    with pytest.raises(LabelStudioError, match="No labels"):
        choices_config([])


def test_latest_submitted_annotation_is_the_review_and_skips_or_foreign_tasks_are_not() -> None:
    task = {"id": 7, "data": {SAMPLE_ID_KEY: "s1", "ram_round": 2, SUGGESTION_KEY: ["dog", "cat"]},
            "annotations": [_annotation(1, ["cat"], "2026-01-01T00:00:00Z"),
                            _annotation(2, ["dog", "tree"], "2026-01-02T00:00:00Z"),
                            _annotation(3, ["car"], "2026-01-03T00:00:00Z", was_cancelled=True)]}
    review = read_review(task)
    assert (review.annotation_id, review.labels, review.round, review.reviewer) == (2, ["dog", "tree"], 2, 3)
    assert review.suggested == ["cat", "dog"]
    task["annotations"].append(_annotation(4, ["cat"], "2025-01-01T00:00:00Z", ground_truth=True))
    assert read_review(task).annotation_id == 4  # a ground-truth annotation wins over newer ones
    assert read_review({**task, "annotations": [task["annotations"][2]]}) is None  # only skipped
    assert read_review({"id": 8, "data": {"image": "x"}, "annotations": task["annotations"]}) is None


def test_prediction_names_project_labels_with_their_best_tag_confidence() -> None:
    mapping = build_label_mapping(["Dogs", "pet", "unicorn"], list(TINY_TAGS), synonyms={"pet": ["dog", "cat"]})
    prediction = ram_prediction({"dog": 0.7, "cat": 0.9, "car": 0.99}, mapping, "v1", score=0.25)
    assert prediction[0]["score"] == 0.25 and prediction[0]["model_version"] == "v1"
    assert prediction[0]["result"][0]["value"]["choices"] == ["pet", "Dogs"]
    assert suggested_labels(prediction) == ["Dogs", "pet"]
    assert ram_prediction({}, mapping, "v1")[0]["result"] == []
    assert ram_prediction(None, mapping, "v1") == []


def test_local_files_urls_stay_inside_the_document_root(tmp_path) -> None:
    (tmp_path / "a b").mkdir()
    assert local_files_url(str(tmp_path / "a b" / "x#1.jpg"), str(tmp_path)) == "/data/local-files/?d=a%20b/x%231.jpg"
    assert local_files_url("/elsewhere/x.jpg", str(tmp_path)) is None


def test_send_params_parse_weights_and_refuse_bad_ones() -> None:
    params = SendReviewParams.from_mapping({"label_field": "gt", "diversity_weight": "0", "batch_size": "7"})
    assert params.weights == {"disagreement": 0.5, "uncertainty": 0.3, "diversity": 0.0}
    assert params.batch_size == 7 and params.state.task_field == "gt_ls_task"
    with pytest.raises(PluginInputError, match="must be >= 0"):
        SendReviewParams.from_mapping({"label_field": "gt", "uncertainty_weight": -1})
    with pytest.raises(PluginInputError, match="positive"):
        SendReviewParams.from_mapping({"label_field": "gt", "weights": {"disagreement": 0, "uncertainty": 0,
                                                                         "diversity": 0}})
    with pytest.raises(PluginInputError, match="label field"):
        SendReviewParams.from_mapping({})


def test_label_studio_settings_name_the_missing_secret_and_unreachable_servers_fail_clearly() -> None:
    with pytest.raises(PluginInputError, match="LABEL_STUDIO_URL"):
        LabelStudioSettings.from_secrets({}, env={})
    with pytest.raises(PluginInputError, match="LABEL_STUDIO_API_KEY"):
        LabelStudioSettings.from_secrets({"LABEL_STUDIO_URL": "http://x"}, env={})
    with pytest.raises(LabelStudioError, match="http"):
        LabelStudioClient("localhost:8080", "key")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with LabelStudioClient(f"http://127.0.0.1:{port}", "secret-key", timeout=5) as ls:
        with pytest.raises(LabelStudioError, match="cannot be reached") as caught:
            ls.projects()
    assert "secret-key" not in str(caught.value)


def test_uploads_are_split_by_count_and_size(tmp_path) -> None:
    items = []
    for i in range(45):
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(b"x" * 10)
        items.append((i, f"{i}.jpg", str(path)))
    assert [len(b) for b in _upload_batches(items)] == [20, 20, 5]
    assert sum(_upload_batches(items), []) == items


def test_reviewed_labels_become_positives_offered_negatives_and_unknowns() -> None:
    names = list(TINY_TAGS)
    mapping = build_label_mapping(["cat", "dog", "unicorn"], names)
    data = ReviewedData(["a", "b"], ["/a.jpg", "/b.jpg"], [["dog"], []], mapping, ["cat", "dog", "unicorn"])
    matrix = data.label_matrix(len(names))
    dog, cat = names.index("dog"), names.index("cat")
    assert matrix[0, dog] == 1 and matrix[0, cat] == 0 and matrix[1, dog] == 0 and matrix[1, cat] == 0
    others = np.delete(matrix, [dog, cat], axis=1)
    assert (others == -1).all()
    (record,) = data.records()  # an image with nothing chosen teaches the trainer nothing
    assert record.union_label_id == [dog] and record.reviewed_label_id == sorted([dog, cat])


def test_the_forms_refuse_to_run_without_label_studio_secrets_or_a_sent_batch(monkeypatch, tmp_path) -> None:
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionError

    for name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    dataset = fo_fixtures.make_dataset("review-forms", fo_fixtures.write_images(tmp_path, 2), labels=[["dog"], []])
    try:
        with pytest.raises(ExecutionError, match="LABEL_STUDIO_URL"):
            foo.execute_operator(f"{fo_fixtures.PLUGIN_NAME}/send_review_batch",
                                 {"dataset": dataset.name, "params": {"label_field": "ground_truth"}})
        monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")
        monkeypatch.setenv("LABEL_STUDIO_API_KEY", "k")
        with pytest.raises(ExecutionError, match="No review batch was sent"):
            foo.execute_operator(f"{fo_fixtures.PLUGIN_NAME}/load_label_studio_reviews",
                                 {"dataset": dataset.name, "params": {"label_field": "ground_truth"}})
    finally:
        dataset.delete()
