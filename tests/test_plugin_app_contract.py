"""What the FiftyOne App asks of the operators beyond `execute`: the output form after a
failure, the triggers it runs afterwards, icons and form descriptions (issue 12)."""
from __future__ import annotations

# ruff: noqa: I001  (fo_fixtures must be imported before fiftyone: it sets FiftyOne's config)

import asyncio

import fo_fixtures as fx
import pytest
import yaml

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators.executor import ExecutionContext, resolve_type_with_context

pytestmark = pytest.mark.fiftyone

MANIFEST_OPERATORS = yaml.safe_load((fx.REPO_ROOT / "fiftyone.yml").read_text())["operators"]
URIS = tuple(f"{fx.PLUGIN_NAME}/{name}" for name in MANIFEST_OPERATORS)


@pytest.fixture()
def dataset(request, tmp_path) -> fo.Dataset:
    images = fx.write_images(tmp_path / "imgs", 4, seed=3)
    ds = fx.make_dataset(f"app-{request.node.name}"[:60], images, labels=[["dog"], ["cat"], ["dog", "cat"], []])
    yield ds
    ds.delete()


def _resolve(uri: str, dataset: fo.Dataset, **request):
    """What the App's /operators/resolve-type route computes."""
    operator = foo.get_operator(uri)
    ctx = ExecutionContext({"dataset_name": dataset.name, "params": {}, **request}, operator_uri=uri)
    return asyncio.run(resolve_type_with_context(operator, ctx))


@pytest.mark.parametrize("uri", URIS)
def test_output_form_after_a_failed_run_is_no_error_of_its_own(uri, dataset) -> None:
    """The App asks for outputs with `results: null` after an error; an exception here replaced the
    real error with "'NoneType' object has no attribute 'get'"."""
    resolved = _resolve(uri, dataset, target="outputs", results=None)
    assert resolved is None, getattr(resolved, "error", resolved)


def test_output_form_lists_the_results(dataset) -> None:
    resolved = _resolve(fx.TAG_URI, dataset, target="outputs",
                        results={"tagged": 3, "skipped": 1, "failed": 0, "model_version": "v", "field": "ram"})
    assert set(resolved.type.properties) == {"tagged", "skipped", "failed", "model_version", "field"}


def test_find_disagreements_opens_its_new_saved_view_on_the_first_run(dataset, tiny_files, tmp_path) -> None:
    """The App's set_view by name fails for a view saved during the run (it is not in the App's list)."""
    thresholds = fx.write_thresholds(tmp_path / "t.txt", {"dog": 0.0})
    foo.execute_operator(fx.TAG_URI, {"dataset": dataset.name, "params": {
        **fx.model_params(tiny_files, thresholds=thresholds), "field": "ram", "label_field": "ground_truth"}})
    run = foo.execute_operator(fx.DISAGREE_URI, {"dataset": dataset.name, "params": {
        "ram_field": "ram", "label_field": "ground_truth"}})
    requests = [r for r in run.executor.to_json()["requests"] if r["operator_uri"] != "console_log"]
    assert [r["operator_uri"] for r in requests] == ["reload_dataset", "set_view"]
    params = requests[1]["params"]
    saved = dataset.load_saved_view(run.result["saved_view"])
    def stages(serialized):  # each load gives the stages new uuids
        return [(stage["_cls"], stage["kwargs"]) for stage in serialized]

    assert "name" not in params and stages(params["view"]) == stages(saved._serialize())


@pytest.mark.parametrize("uri", URIS)
def test_operators_have_icons(uri) -> None:
    assert foo.get_operator(uri).config.icon


def test_every_model_option_in_the_form_has_its_own_description(dataset) -> None:
    form = _resolve(fx.TAG_URI, dataset, target="inputs")
    properties = form.type.properties
    precision = properties["precision"].view.description
    assert "inference precision" in precision.lower() and "amx" in precision.lower()
    from ram_model.inference.options import MODEL_OPTIONS

    shown = [spec.name for spec in MODEL_OPTIONS if spec.in_form and spec.name in properties]
    descriptions = [properties[name].view.description for name in shown]
    assert len(shown) >= 10 and all(descriptions) and len(set(descriptions)) == len(descriptions)


@pytest.mark.parametrize("uri", URIS)
def test_forms_resolve(uri, dataset) -> None:
    form = _resolve(uri, dataset, target="inputs")
    assert not hasattr(form, "error"), getattr(form, "error", None)
    assert form.type.properties


def test_export_form_asks_for_tag_lists_only_without_a_tag_run(dataset, tiny_files) -> None:
    """Export loads no model, so it never asks for a checkpoint; tag-list files only when no tag run has the names."""
    without_run = _resolve(fx.EXPORT_URI, dataset, target="inputs").type.properties
    assert "tag_list" in without_run and "checkpoint" not in without_run
    foo.execute_operator(fx.TAG_URI, {"dataset": dataset.name, "params": {**fx.model_params(tiny_files),
                                                                          "field": "ram"}})
    with_run = _resolve(fx.EXPORT_URI, dataset, target="inputs").type.properties
    assert "tag_list" not in with_run and "checkpoint" not in with_run


def test_a_known_error_is_one_line_first_in_the_result_panel(dataset, tmp_path, caplog) -> None:
    """FiftyOne shows an exception from `execute` as its raw traceback; a bad input instead answers
    the one-line message, the output form shows it first, and the traceback goes to the log."""
    missing = tmp_path / "no_such_checkpoint.safetensors"
    with caplog.at_level("WARNING", logger="plugin.operators"):
        run = foo.execute_operator(fx.TAG_URI, {"dataset": dataset.name, "params": {
            "checkpoint": str(missing), "device": "cpu", "precision": "fp32", "field": "ram"}})
    assert run.error is None  # no traceback in the execution's own error either
    message = fx.assert_failed(run.result, "no_such_checkpoint")
    resolved = _resolve(fx.TAG_URI, dataset, target="outputs", results=run.result)
    first_name, first = next(iter(resolved.type.properties.items()))
    assert first_name == "error" and first.view.label == message
    assert "Traceback" in caplog.text and message in caplog.text
    assert not dataset.has_sample_field("ram")


def test_a_delegated_failure_is_marked_failed_with_the_short_message(dataset, tmp_path) -> None:
    """The Runs list marks it failed; its error is the short message, not the chain that led to it."""
    missing = tmp_path / "no_such_checkpoint.safetensors"
    operation = fx.run_delegated(fx.TAG_URI, dataset, {"checkpoint": str(missing), "device": "cpu", "field": "ram"})
    assert operation.run_state == "failed", operation.result
    error = operation.result.error
    last = error.rstrip().splitlines()[-1]
    assert last.startswith("plugin.operators.failures.OperatorFailure: checkpoint ") and str(missing) in last, error
    assert "CheckpointNotFoundError" not in error and "resolve_checkpoint" not in error, error  # no chained cause
