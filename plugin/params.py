"""The parameters of the three jobs, parsed once from operator params or CLI flags.

Operators and the CLI build the same frozen objects, so a key name or a default lives
here only, and `execute` never reads a raw `ctx.params` key.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, Literal

from plugin.errors import PluginInputError
from ram_model.errors import ConfigError
from ram_model.inference.options import ModelOptions
from ram_model.inference.thresholds import ThresholdPolicy
from ram_model.model.option import option_values

__all__ = [
    "DisagreementParams",
    "ExportParams",
    "ModelParams",
    "SimilarityParams",
    "TagParams",
    "check_field_name",
]

_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def check_field_name(name: str, what: str = "field") -> str:
    """FiftyOne field names: no dots (they mean embedded paths), no leading underscore."""
    if not isinstance(name, str) or not _FIELD_NAME.match(name):
        raise PluginInputError(
            f"{what} {name!r} is not a usable field name: use letters, digits and '_', starting with a letter"
        )
    return name


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _opt_int(value: Any, name: str, low: int = 1) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError) as e:
        raise PluginInputError(f"{name} must be an integer, not {value!r}") from e
    if number < low:
        raise PluginInputError(f"{name} must be >= {low}, not {number}")
    return number


def job_values(cls: type, params: Mapping[str, Any]) -> dict[str, Any]:
    """The options `cls` declares (`ram_model.model.option`) that a form or the CLI gave, parsed;
    a bad value is a form error naming its key. The dataclass's defaults fill in the rest."""
    try:
        return option_values(cls, params, given_only=True, what=lambda spec: spec.param)
    except ConfigError as e:
        raise PluginInputError(str(e)) from None


def _model_options(params: Mapping[str, Any], env: Mapping[str, str] | None) -> ModelOptions:
    try:
        return ModelOptions.from_values(params, env=env)
    except ConfigError as e:
        raise PluginInputError(str(e)) from None


@dataclass(frozen=True)
class ModelParams:
    """Which model runs: the shared server if `server_url` is set, else an in-process engine
    built from `options` (declared once in `ram_model.inference.options`)."""

    options: ModelOptions = dataclass_field(default_factory=ModelOptions)
    server_url: str | None = None
    server_auth: str | None = None

    @classmethod
    def from_mapping(
        cls,
        params: Mapping[str, Any],
        *,
        env: Mapping[str, str] | None = None,
        secrets: Mapping[str, str | None] | None = None,
    ) -> ModelParams:
        """Explicit params win, then RAM_ANNOTATE_<NAME> environment variables, then defaults.

        The server URL and its credentials come from FiftyOne secrets (or the same
        environment variables), never from a form, so they do not end up in run records.
        """
        env = os.environ if env is None else env
        secrets = secrets or {}
        url = secrets.get("RAM_ANNOTATE_URL") or env.get("RAM_ANNOTATE_URL")
        auth = secrets.get("RAM_ANNOTATE_AUTH") or env.get("RAM_ANNOTATE_AUTH")
        return cls(options=_model_options(params, env), server_url=_opt_str(url), server_auth=_opt_str(auth))


@dataclass(frozen=True)
class TagParams:
    """Tag with RAM: where to write, which tags to keep, what to do with earlier results."""

    field: str = "ram"
    label_field: str | None = None
    policy: ThresholdPolicy = dataclass_field(default_factory=ThresholdPolicy)
    synonyms: str | None = None
    chinese_names: bool = False
    overwrite: bool = False
    chunk_size: int = 64
    # With a label field, only the RAM tags its labels map onto are computed and written
    # (the same scores, faster); True keeps every RAM tag.
    all_ram_tags: bool = False
    # Labels that map onto no RAM tag are scored as open-set classes (plugin.models.open_set); False: never predicted.
    open_set_labels: bool = True
    # Evidence maps (ram_model.evidence): a box and a heatmap per fired tag (plugin.fo_evidence).
    evidence: bool = False

    def __post_init__(self) -> None:
        check_field_name(self.field, "RAM field")
        if self.label_field is not None and self.label_field != "tags":
            check_field_name(self.label_field, "label field")
        if self.chunk_size < 1:
            raise PluginInputError("chunk_size must be >= 1")

    @property
    def scores_field(self) -> str:
        """Per-sample scores over the label field's classes (only with a label field)."""
        return f"{self.field}_scores"

    @property
    def error_field(self) -> str:
        """Why a sample could not be tagged (unset when it was)."""
        return f"{self.field}_error"

    @property
    def evidence_field(self) -> str:
        """fo.Detections: each fired tag's evidence box and map (with `evidence`)."""
        return f"{self.field}_evidence"

    @property
    def heatmap_field(self) -> str:
        """fo.Heatmap: the best tag's evidence map, or the one `where_ram_sees` chose."""
        return f"{self.field}_heatmap"

    @property
    def run_key(self) -> str:
        return f"ram_tag_{self.field}"

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any], *, env: Mapping[str, str] | None = None) -> TagParams:
        """`threshold`, `tag_threshold` and `top_k` are the model options of that name."""
        return cls(
            field=_opt_str(params.get("field")) or cls.field,
            label_field=_opt_str(params.get("label_field")),
            policy=_model_options(params, env).threshold_policy(),
            synonyms=_opt_str(params.get("synonyms")),
            chinese_names=bool(params.get("chinese_names", False)),
            overwrite=bool(params.get("overwrite", False)),
            chunk_size=_opt_int(params.get("chunk_size"), "chunk_size") or cls.chunk_size,
            all_ram_tags=bool(params.get("all_ram_tags", False)),
            open_set_labels=bool(params.get("open_set_labels", True)),
            evidence=bool(params.get("evidence", False)),
        )


@dataclass(frozen=True)
class DisagreementParams:
    """Find disagreements between a RAM field and a label field, written under `output`."""

    ram_field: str = "ram"
    label_field: str = "ground_truth"
    output: str | None = None
    view_name: str | None = None
    synonyms: str | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        check_field_name(self.ram_field, "RAM field")
        if self.label_field != "tags":
            check_field_name(self.label_field, "label field")
        check_field_name(self.prefix, "output prefix")

    @property
    def prefix(self) -> str:
        return self.output or f"{self.ram_field}_vs_{self.label_field}"

    @property
    def missing_field(self) -> str:
        return f"{self.prefix}_missing"

    @property
    def wrong_field(self) -> str:
        return f"{self.prefix}_wrong"

    @property
    def score_field(self) -> str:
        return f"{self.prefix}_score"

    @property
    def saved_view(self) -> str:
        return self.view_name or f"{self.prefix}-by-disagreement".replace("_", "-")

    @property
    def run_key(self) -> str:
        return f"ram_review_{self.prefix}"

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> DisagreementParams:
        return cls(
            ram_field=_opt_str(params.get("ram_field")) or cls.ram_field,
            label_field=_opt_str(params.get("label_field")) or cls.label_field,
            output=_opt_str(params.get("output")),
            view_name=_opt_str(params.get("view_name")),
            synonyms=_opt_str(params.get("synonyms")),
            overwrite=bool(params.get("overwrite", False)),
        )


@dataclass(frozen=True)
class ExportParams:
    """Export a (corrected) label field as RAM finetune JSON plus Label Studio tasks."""

    label_field: str = "ground_truth"
    output_dir: str = ""
    ram_field: str | None = "ram"
    copy_images: bool = False
    on_unmapped: Literal["skip", "fail"] = "skip"
    synonyms: str | None = None
    ls_document_root: str | None = None
    overwrite: bool = False

    finetune_name = "ram_finetune.json"
    tasks_name = "label_studio_tasks.json"
    images_dir = "images"

    def __post_init__(self) -> None:
        if self.label_field != "tags":
            check_field_name(self.label_field, "label field")
        if self.ram_field is not None:
            check_field_name(self.ram_field, "RAM field")
        if not self.output_dir and self.copy_images:
            raise PluginInputError("an output directory is required when copying images")
        if self.on_unmapped not in ("skip", "fail"):
            raise PluginInputError(f"on_unmapped must be 'skip' or 'fail', not {self.on_unmapped!r}")

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> ExportParams:
        ram_field = params.get("ram_field", cls.ram_field)
        return cls(
            label_field=_opt_str(params.get("label_field")) or cls.label_field,
            output_dir=os.path.expanduser(_opt_str(params.get("output_dir")) or ""),
            ram_field=_opt_str(ram_field),
            copy_images=bool(params.get("copy_images", False)),
            on_unmapped=_opt_str(params.get("on_unmapped")) or cls.on_unmapped,  # type: ignore[arg-type]
            synonyms=_opt_str(params.get("synonyms")),
            ls_document_root=_opt_str(params.get("ls_document_root")),
            overwrite=bool(params.get("overwrite", False)),
        )


_BRAIN_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class SimilarityParams:
    """Compute RAM similarity: embeddings into `embeddings_field`, a Brain index under `brain_key`."""

    embeddings_field: str = "ram_embedding"
    brain_key: str = "ram_sim"
    text_queries: bool = True
    overwrite: bool = False
    chunk_size: int = 64

    def __post_init__(self) -> None:
        check_field_name(self.embeddings_field, "embeddings field")
        if not isinstance(self.brain_key, str) or not _BRAIN_KEY.match(self.brain_key):
            raise PluginInputError(f"brain key {self.brain_key!r}: use letters, digits and '_', starting with a letter")
        if self.chunk_size < 1:
            raise PluginInputError("chunk_size must be >= 1")

    @property
    def run_key(self) -> str:
        return f"ram_embed_{self.embeddings_field}"

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> SimilarityParams:
        return cls(
            embeddings_field=_opt_str(params.get("embeddings_field")) or cls.embeddings_field,
            brain_key=_opt_str(params.get("brain_key")) or cls.brain_key,
            text_queries=bool(params.get("text_queries", cls.text_queries)),
            overwrite=bool(params.get("overwrite", False)),
            chunk_size=_opt_int(params.get("chunk_size"), "chunk_size") or cls.chunk_size,
        )
