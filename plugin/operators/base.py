"""What every ram-annotate operator shares: its config, the form's frame, run-then-reload, the result panel.

An operator says what it is (class attributes), what its form holds (`form`) and which job it
runs (`run`); this base turns that into FiftyOne's `config`, `resolve_input`, `execute` and
`resolve_output`, so the eleven operators differ only where they really do. Known errors are
answered as one line by `plugin.operators.failures.reports_failures`, applied to every class
in `plugin.operators.OPERATORS`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import fiftyone.operators as foo
from fiftyone.operators import types

from plugin.jobs import JobResult
from plugin.operators.inputs import show_result

__all__ = ["RamOperator", "open_saved_view"]


def open_saved_view(ctx: foo.ExecutionContext, name: str) -> None:
    """Show the saved view in the App, sent as its stages.

    The App's `set_view` looks a name up in the list of saved views it loaded with the
    dataset; a view saved during this run (or by the CLI since the App opened) is not in
    it, and the App fails with "Saved view ... does not exist". The stages always work.
    """
    ctx.ops.set_view(view=ctx.dataset.load_saved_view(name))


class RamOperator(foo.Operator):
    """Subclasses set the class attributes and implement `form` and `run`."""

    name: ClassVar[str]  # the operator's name in fiftyone.yml (FiftyOne's `name` property reads the config)
    label: ClassVar[str]
    icon: ClassVar[str]  # a Material icon name: the App's operator browser shows it
    description: ClassVar[str]
    delegated_by_default: ClassVar[bool] = False  # long jobs default to delegated execution
    verb: ClassVar[str]  # what the target-view choice says is done to the samples ("Tag", "Train on")
    form_title: ClassVar[str | None] = None  # the form's heading (default: the label)
    progress_label: ClassVar[str] = "Working"  # the App's progress line: "<label>: N of M"
    result_labels: ClassVar[dict[str, str]] = {}  # result keys shown in the result panel, with their labels
    result_title: ClassVar[str] = "Done"
    opens_saved_view: ClassVar[bool] = False  # the job saves a ranked view (`result.saved_view`): show it

    @property
    def config(self) -> foo.OperatorConfig:
        """A dynamic form, run now or delegated; long jobs default to delegated execution."""
        extra = {"default_choice_to_delegated": True} if self.delegated_by_default else {}
        return foo.OperatorConfig(name=self.name, label=self.label, description=self.description, icon=self.icon,
                                  dynamic=True, allow_immediate_execution=True, allow_delegated_execution=True,
                                  **extra)

    def resolve_input(self, ctx: foo.ExecutionContext) -> types.Property:
        inputs = types.Object()
        inputs.view_target(ctx, action_description=self.verb)
        self.form(ctx, inputs)
        return types.Property(inputs, view=types.View(label=self.form_title or self.label))

    def form(self, ctx: foo.ExecutionContext, inputs: types.Object) -> None:
        """Add the operator's inputs (after the target-view choice)."""
        raise NotImplementedError

    def run(self, ctx: foo.ExecutionContext, progress: Callable[[int, int], None]) -> JobResult | dict[str, Any]:
        """Run the job on `ctx.target_view()` with the form's params; return what the panel shows."""
        raise NotImplementedError

    def after_run(self, ctx: foo.ExecutionContext, result: Any) -> None:
        """An immediate run's effect on the App: the dataset changed, so it reloads (and shows the view
        the job saved)."""
        ctx.trigger("reload_dataset")
        if self.opens_saved_view:
            open_saved_view(ctx, result.saved_view)

    def execute(self, ctx: foo.ExecutionContext) -> dict[str, Any]:
        def progress(done: int, total: int) -> None:  # shows up in the App's operation list
            ctx.set_progress(progress=done / total if total else 1.0, label=f"{self.progress_label}: {done} of {total}")

        result = self.run(ctx, progress)
        if not ctx.delegated:
            self.after_run(ctx, result)
        return result.to_dict() if isinstance(result, JobResult) else result

    def resolve_output(self, ctx: foo.ExecutionContext) -> types.Property | None:
        # After a failed execution the App still asks for the output form, with `results` null;
        # None lets it show the execution's own error instead of one raised building an empty panel.
        if not ctx.results:
            return None
        outputs = types.Object()
        self.output(outputs, ctx.results)
        return types.Property(outputs, view=types.View(label=self.result_title))

    def output(self, outputs: types.Object, results: dict[str, Any]) -> None:
        """The result panel's contents: the labelled result keys."""
        show_result(outputs, results, self.result_labels)
