"""Fine-tuning and threshold tuning from reviews: interrupted runs resume, finished ones are reused."""
from __future__ import annotations

# ruff: noqa: I001  (fo_fixtures must be imported before fiftyone: it sets FiftyOne's config)

import json

import fo_fixtures as fx
import pytest

import fiftyone as fo
from plugin.review_round.finetune import finetune_on_reviews
from plugin.params import ModelParams
from plugin.review_round.params import FinetuneJobParams
from ram_model.review import TuningOptions
from ram_model.finetune import FinetuneError

pytestmark = pytest.mark.fiftyone

REVIEWED = [["dog"], ["cat"], ["dog", "tree"], ["car"], ["tree"], ["dog", "cat"], ["car", "tree"], ["cat"]]


def test_an_interrupted_finetune_resumes_and_a_finished_one_is_reused(tiny_files, tmp_path) -> None:
    dataset = fx.make_dataset("finetune-job", fx.write_images(tmp_path / "imgs", len(REVIEWED), seed=5),
                              labels=REVIEWED, label_field="gt_reviewed")
    model = ModelParams.from_mapping(fx.model_params(tiny_files), env={})
    params = FinetuneJobParams(reviewed_field="gt_reviewed", output_dir=str(tmp_path / "work"), promote=False,
                               training={"epochs": 2, "batch_size": 2, "val_split": 0.25, "num_workers": 0,
                                         "augment": False})
    calls = []

    def stop_in_second_epoch() -> bool:
        calls.append(1)
        return len(calls) > 4  # 6 training images, batch 2: 3 steps per epoch

    try:
        with pytest.raises(FinetuneError, match="stopped"):
            finetune_on_reviews(dataset, params, model, should_stop=stop_in_second_epoch)
        resumed = finetune_on_reviews(dataset, params, model)
        assert resumed.trained
        events = [json.loads(line)["event"] for line in
                  (tmp_path / "work" / "runs").glob("*/train_log.jsonl").__next__().read_text().splitlines()]
        assert "stopped" in events and "resume" in events
        data = json.loads(open(resumed.data).read())
        assert all("reviewed_label_id" in entry for entry in data)

        again = finetune_on_reviews(dataset, params, model)
        assert (again.trained, again.version, again.run_dir) == (False, resumed.version, resumed.run_dir)
        assert again.metrics and {"base", "new"} <= set(again.metrics[0])
    finally:
        if fo.dataset_exists("finetune-job"):
            fo.delete_dataset("finetune-job")


def test_thresholds_tune_from_a_finetune_export_as_well_as_from_a_field(tiny_files, tmp_path) -> None:
    from plugin.review_round.tune_thresholds import tune_thresholds_on_reviews
    from plugin.review_round.params import ThresholdJobParams
    from ram_model.weights.testing import make_shapes_dataset

    export = make_shapes_dataset(tmp_path / "export", 12, seed=3)
    dataset = fx.make_dataset("thresholds-job", fx.write_images(tmp_path / "imgs", 2, seed=6), labels=[["dog"], []],
                              label_field="gt_reviewed")
    model = ModelParams.from_mapping(fx.model_params(tiny_files), env={})
    try:
        from_file = tune_thresholds_on_reviews(dataset, ThresholdJobParams(data=str(export), tuning=TuningOptions(min_count=1),
                                                                           output_dir=str(tmp_path / "a")), model)
        assert from_file.images == 12 and from_file.tuned + from_file.shrunk >= 1
        lines = open(from_file.thresholds).read().split()
        assert len(lines) == 48  # one threshold per class of the tiny vocabulary
        from_field = tune_thresholds_on_reviews(dataset, ThresholdJobParams(reviewed_field="gt_reviewed",
                                                                            output_dir=str(tmp_path / "b")), model)
        assert from_field.images == 2 and from_field.tuned == 0  # too few positives: every class keeps RAM's cut
    finally:
        fo.delete_dataset("thresholds-job")
