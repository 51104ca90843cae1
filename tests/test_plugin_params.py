"""Parsing operator params and CLI values into the jobs' frozen params: defaults, env, errors."""
from __future__ import annotations

import pytest

from plugin.errors import PluginInputError
from plugin.params import (
    DisagreementParams,
    ExportParams,
    ModelParams,
    TagParams,
    check_field_name,
)


def test_defaults_and_derived_field_names() -> None:
    params = TagParams.from_mapping({})
    assert (params.field, params.scores_field, params.error_field, params.run_key) == (
        "ram", "ram_scores", "ram_error", "ram_tag_ram")
    review = DisagreementParams.from_mapping({"label_field": "gt"})
    assert (review.missing_field, review.wrong_field, review.score_field) == (
        "ram_vs_gt_missing", "ram_vs_gt_wrong", "ram_vs_gt_score")
    assert review.saved_view == "ram-vs-gt-by-disagreement"


@pytest.mark.parametrize("name", ["", "1ram", "_private", "a.b", "with space", "ram-1"])
def test_unusable_field_names_are_refused(name: str) -> None:
    with pytest.raises(PluginInputError, match="not a usable field name"):
        check_field_name(name)


@pytest.mark.parametrize(("raw", "expected"), [
    ("dog=0.3, cat=0.5", (("cat", 0.5), ("dog", 0.3))),
    ({"traffic light": "0.7"}, (("traffic light", 0.7),)),
    ("", None),
    (None, None),
])
def test_per_tag_thresholds(raw, expected) -> None:
    per_tag = TagParams.from_mapping({"tag_threshold": raw}, env={}).policy.per_tag
    assert (tuple(sorted(per_tag.items())) if per_tag else None) == expected


@pytest.mark.parametrize(("params", "message"), [
    ({"tag_threshold": "dog"}, "TAG=VALUE"),
    ({"tag_threshold": "dog=2"}, r"lie in \[0.0, 1.0\]"),
    ({"threshold": "high"}, "must be a number"),
    ({"top_k": 0}, ">= 1"),
    ({"field": "a.b"}, "usable field name"),
])
def test_bad_values_name_the_problem(params, message) -> None:
    with pytest.raises(PluginInputError, match=message):
        TagParams.from_mapping(params)


def test_export_needs_an_output_folder_and_a_known_unmapped_policy() -> None:
    with pytest.raises(PluginInputError, match="output directory"):
        ExportParams.from_mapping({"label_field": "gt", "copy_images": True})
    assert ExportParams.from_mapping({"label_field": "gt"}).output_dir == ""
    with pytest.raises(PluginInputError, match="on_unmapped"):
        ExportParams.from_mapping({"label_field": "gt", "output_dir": "/tmp/x", "on_unmapped": "drop"})


def test_model_options_come_from_params_then_environment_and_the_server_from_secrets() -> None:
    env = {"RAM_ANNOTATE_CHECKPOINT": "/ckpt/env.pth", "RAM_ANNOTATE_DEVICE": "cpu", "RAM_ANNOTATE_BATCH_SIZE": "8"}
    model = ModelParams.from_mapping({"checkpoint": "/ckpt/form.pth"}, env=env)
    options = model.options
    assert (options.checkpoint, options.device, options.batch_size, model.server_url) == ("/ckpt/form.pth", "cpu", 8, None)
    remote = ModelParams.from_mapping({}, env={}, secrets={"RAM_ANNOTATE_URL": "http://127.0.0.1:9090",
                                                          "RAM_ANNOTATE_AUTH": "u:p"})
    assert (remote.server_url, remote.server_auth) == ("http://127.0.0.1:9090", "u:p")
    config = options.engine_config()
    assert config.checkpoint == "/ckpt/form.pth" and config.exif_transpose is True
