"""Parameters of the review round (send to Label Studio, load reviews, fine-tune, tune thresholds).

Parsed once from operator params or CLI flags, like `plugin.params`; the field names the
round writes are derived here so every job agrees on them.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

from plugin.errors import PluginInputError
from plugin.params import _opt_str, check_field_name, job_values, synonyms_option
from ram_model.finetune.config import FinetuneConfig
from ram_model.review import TuningOptions
from ram_model.option import option

__all__ = [
    "DEFAULT_WEIGHTS",
    "LS_SECRET_KEYS",
    "FinetuneJobParams",
    "LabelStudioSettings",
    "LoadReviewsParams",
    "SendReviewParams",
    "ThresholdJobParams",
    "review_state_fields",
    "reviews_run_key",
    "work_dir",
]

# Selection shares of the batch (docs/review.md "Review-batch selection").
DEFAULT_WEIGHTS = {"disagreement": 0.5, "uncertainty": 0.3, "diversity": 0.2}
LS_SECRET_KEYS = ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT")


def _opt_float(value: Any, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as e:
        raise PluginInputError(f"{name} must be a number, not {value!r}") from e


def work_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where fine-tuning runs, training data and tuned thresholds go unless a form says otherwise."""
    env = os.environ if env is None else env
    return Path(env.get("RAM_ANNOTATE_WORK_DIR") or Path.home() / ".ram-annotate").expanduser()


@dataclass(frozen=True)
class LabelStudioSettings:
    """Where Label Studio runs; from plugin secrets (or environment variables of the same names)."""

    url: str
    api_key: str
    document_root: str | None = None

    @classmethod
    def from_secrets(cls, secrets: Mapping[str, str | None] | None = None,
                     env: Mapping[str, str] | None = None) -> LabelStudioSettings:
        env = os.environ if env is None else env
        values = {key: (secrets or {}).get(key) or env.get(key) for key in LS_SECRET_KEYS}
        if not values["LABEL_STUDIO_URL"]:
            raise PluginInputError("Set the LABEL_STUDIO_URL secret (e.g. http://localhost:8080)")
        if not values["LABEL_STUDIO_API_KEY"]:
            raise PluginInputError("Set the LABEL_STUDIO_API_KEY secret (Label Studio: Account & Settings)")
        return cls(str(values["LABEL_STUDIO_URL"]).rstrip("/"), str(values["LABEL_STUDIO_API_KEY"]),
                   _opt_str(values["LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"]))

    def client(self):  # type: ignore[no-untyped-def]
        from ram_client.labelstudio.client import LabelStudioClient

        return LabelStudioClient(self.url, self.api_key)


@dataclass(frozen=True)
class ReviewStateFields:
    """The per-sample fields and run keys that remember what was sent for one label field."""

    label_field: str

    @property
    def task_field(self) -> str:
        """Label Studio task id of the sample (set once its task exists: the "already sent" mark)."""
        return f"{self.label_field}_ls_task"

    @property
    def round_field(self) -> str:
        return f"{self.label_field}_ls_round"

    @property
    def project_run(self) -> str:
        return f"ram_ls_{self.label_field}"

    def round_run(self, number: int) -> str:
        return f"ram_ls_{self.label_field}_r{number}"

    @property
    def round_prefix(self) -> str:
        return f"ram_ls_{self.label_field}_r"


def reviews_run_key(output_field: str) -> str:
    """The run Load reviews records for the field it writes."""
    return f"ram_reviews_{output_field}"


def review_state_fields(label_field: str) -> ReviewStateFields:
    return ReviewStateFields(label_field)


def _weights(params: Mapping[str, Any]) -> dict[str, float]:
    given = params.get("weights")
    if isinstance(given, Mapping):
        raw = dict(given)
    else:
        raw = {name: params.get(f"{name}_weight") for name in DEFAULT_WEIGHTS}
    weights = {}
    for name, default in DEFAULT_WEIGHTS.items():
        value = _opt_float(raw.get(name), f"{name} weight")
        value = default if value is None else value
        if value < 0:
            raise PluginInputError(f"{name} weight must be >= 0, not {value}")
        weights[name] = value
    if not any(weights.values()):
        raise PluginInputError("At least one selection weight must be positive")
    return weights


@dataclass(frozen=True)
class SendReviewParams:
    """Choose a review batch and send it to Label Studio."""

    label_field: str = option(None, "field to review: its labels become the Choices in Label Studio; reviews load "
                                    "into <field>_reviewed", str, in_form=False, required=True)
    ram_field: str = option("ram", "a field written by Tag with RAM", str, in_form=False)
    batch_size: int = option(50, "samples in the batch", int, low=1, label="Batch size", required=True)
    # Selection shares; the form and the CLI give them as <signal>_weight (docs/review.md).
    weights: dict[str, float] = dataclass_field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    seed: int = option(0, "seed of the diversity sampling", int, low=0, label="Seed")
    project_title: str | None = option(
        None, "Label Studio project title (default: '<dataset> / <label field>'); an existing project is reused",
        str, label="Label Studio project title (optional)")
    classes: tuple[str, ...] = option((), "comma-separated labels to offer besides those in the field", list,
                                      label="Extra classes (optional)")
    synonyms: str | None = synonyms_option()
    embeddings_field: str | None = option(None, "vectors for diversity (default: RAM's tag confidences)", str,
                                          label="Embeddings field (optional)")
    document_root: str | None = option(
        None, "Label Studio local-files root: images under it are served by Label Studio, others uploaded "
        "(default: the LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT secret)", str,
        label="Label Studio local-files root (optional)")
    new_round: bool = option(False, "start a round although the last one is not fully reviewed", bool,
                             label="Start a new round even if the last one is not fully reviewed")
    chunk_size: int = option(100, "samples per write", int, low=1, in_form=False)

    def __post_init__(self) -> None:
        if self.label_field != "tags":
            check_field_name(self.label_field, "label field")
        check_field_name(self.ram_field, "RAM field")
        if self.embeddings_field:
            check_field_name(self.embeddings_field, "embeddings field")

    @property
    def state(self) -> ReviewStateFields:
        return ReviewStateFields(self.label_field)

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> SendReviewParams:
        if not _opt_str(params.get("label_field")):
            raise PluginInputError("Choose the label field to review")
        return cls(**job_values(cls, params), weights=_weights(params))


@dataclass(frozen=True)
class LoadReviewsParams:
    """Read the reviews of the label field's Label Studio project into `output`."""

    label_field: str = option(None, "the field whose batches were sent", str, in_form=False, required=True)
    output: str | None = option(None, "output field (default: <label-field>_reviewed)", str, in_form=False)
    overwrite: bool = option(False, "replace an output field Load reviews did not write", bool, label="Overwrite")
    # A project whose tasks "Export RAM finetuning data" wrote (imported by hand): read it
    # instead of the project a review batch was sent to, for every sample of the view.
    project_id: int | None = option(
        None, "read this Label Studio project (tasks written by `export` and imported there) instead of the one a "
        "review batch went to", int, low=1, in_form=False)

    def __post_init__(self) -> None:
        if self.label_field != "tags":
            check_field_name(self.label_field, "label field")
        check_field_name(self.output_field, "output field")
        if self.output_field == self.label_field:
            raise PluginInputError("Write reviews into a field of their own, not into the label field itself")

    @property
    def output_field(self) -> str:
        return self.output or f"{self.label_field}_reviewed"

    @property
    def run_key(self) -> str:
        return reviews_run_key(self.output_field)

    @property
    def state(self) -> ReviewStateFields:
        return ReviewStateFields(self.label_field)

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> LoadReviewsParams:
        if not _opt_str(params.get("label_field")):
            raise PluginInputError("Choose the label field whose review batch to load")
        return cls(**job_values(cls, params))


@dataclass(frozen=True)
class _FromReviews:
    """Shared by fine-tuning and threshold tuning: where the reviewed labels come from.
    The source fields have their own pickers in the form (`review_inputs.add_reviewed_source`)."""

    reviewed_field: str | None = option(None, "Classifications field of reviewed labels", str, in_form=False)
    data: str | None = option(None, "...or a finetune export JSON", str, in_form=False)
    image_root: str | None = option(None, "image folder of --data (default: its folder)", str, in_form=False)
    synonyms: str | None = synonyms_option()
    output_dir: str | None = option(None, "work folder (default: $RAM_ANNOTATE_WORK_DIR or ~/.ram-annotate)", str,
                                    label="Work folder (optional)")
    retag_field: str | None = option(None, "re-tag the view with the result into this field", str,
                                     label="Re-tag the view into this field (optional)")

    def _check_source(self) -> None:
        if bool(self.reviewed_field) == bool(self.data):
            raise PluginInputError("Give either a reviewed field or a finetune export file, not both or neither")
        if self.reviewed_field and self.reviewed_field != "tags":
            check_field_name(self.reviewed_field, "reviewed field")
        if self.retag_field:
            check_field_name(self.retag_field, "re-tag field")
        if self.data and not Path(self.data).expanduser().is_file():
            raise PluginInputError(f"Finetune export {self.data} does not exist")

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]):  # type: ignore[no-untyped-def]
        return cls(**job_values(cls, params))


@dataclass(frozen=True)
class FinetuneJobParams(_FromReviews):
    """Fine-tune RAM on reviewed labels, register the result, optionally re-tag with it. What to
    train and how are the fine-tuner's own declared options (`training`, by field name)."""

    model_name: str = option("ram-project", "versions are registered under this name", str, label="Model name")
    registry_root: str | None = option(
        None, "model registry folder (default: <work dir>/finetune/models; $RAM_ANNOTATE_WORK_DIR or ~/.ram-annotate)",
        str, label="Model registry folder (optional)",
    )
    promote: bool = option(True, "serve the new version if it validates better than the current one (off: it is "
                                 "registered, and the current one keeps serving)", bool,
                           label="Make it the active version if it beats the current one")
    # Promote only when validated on at least this many held-out images (registry.MIN_VAL_IMAGES).
    min_val_images: int = option(
        20, "fewer held-out images say nothing either way: the version is registered, not promoted", int, low=1,
        label="Promote only if validated on at least this many images",
    )
    training: dict[str, Any] = dataclass_field(default_factory=dict)  # FinetuneConfig options given

    def __post_init__(self) -> None:
        self._check_source()
        if not self.model_name.replace("-", "").replace("_", "").isalnum():
            raise PluginInputError(f"model name {self.model_name!r}: use letters, digits, '-' and '_'")
        unknown = set(self.training) - {f.name for f in dataclasses.fields(FinetuneConfig)}
        if unknown:
            raise PluginInputError(f"Unknown fine-tuning settings {sorted(unknown)}")

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> FinetuneJobParams:
        return cls(**job_values(cls, params), training=job_values(FinetuneConfig, params))


@dataclass(frozen=True)
class ThresholdJobParams(_FromReviews):
    """Tune per-class thresholds on reviewed labels, optionally re-tag with them; how they are
    fitted is the review core's declared `TuningOptions`."""

    tuning: TuningOptions = dataclass_field(default_factory=TuningOptions)

    def __post_init__(self) -> None:
        self._check_source()

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> ThresholdJobParams:
        try:
            tuning = TuningOptions(**job_values(TuningOptions, params))
        except ValueError as e:
            raise PluginInputError(str(e)) from None
        return cls(**job_values(cls, params), tuning=tuning)
