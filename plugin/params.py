"""The parameters of the three jobs, parsed once from operator params or CLI flags.

Operators and the CLI build the same frozen objects, so a key name or a default lives
here only, and `execute` never reads a raw `ctx.params` key.
"""
from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from plugin.errors import PluginInputError

__all__ = [
    "MODEL_OPTION_NAMES",
    "DisagreementParams",
    "ExportParams",
    "ModelParams",
    "TagParams",
    "check_field_name",
]

# The engine options shared with `ram-annotate serve` and `ram-annotate tag`; the same
# names with a RAM_ANNOTATE_ prefix are read from the environment as defaults.
MODEL_OPTION_NAMES = (
    "checkpoint",
    "swin_config",
    "head_config",
    "tag_list",
    "tag_list_zh",
    "thresholds",
    "device",
    "precision",
    "batch_size",
)

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


def _opt_float(value: Any, name: str, low: float = 0.0, high: float = 1.0) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError) as e:
        raise PluginInputError(f"{name} must be a number, not {value!r}") from e
    if not low <= number <= high:
        raise PluginInputError(f"{name} must lie in [{low}, {high}], not {number}")
    return number


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


def _per_tag(value: Any) -> tuple[tuple[str, float], ...] | None:
    """Per-tag thresholds from a mapping or a "dog=0.3, cat=0.5" string (the form's text box)."""
    if value in (None, "", {}):
        return None
    if isinstance(value, str):
        written: dict[str, str] = {}
        for item in value.split(","):
            name, sep, number = item.strip().rpartition("=")
            if not sep or not name.strip():
                raise PluginInputError(f"per-tag thresholds are written TAG=VALUE, got {item.strip()!r}")
            written[name.strip()] = number
        value = written
    if not isinstance(value, Mapping):
        raise PluginInputError(f"per-tag thresholds must be a mapping of tag -> value, not {value!r}")
    pairs: list[tuple[str, float]] = []
    for key, number in value.items():
        threshold = _opt_float(number, f"threshold of {key!r}")
        if threshold is None:
            raise PluginInputError(f"per-tag threshold of {key!r} is empty")
        pairs.append((str(key), threshold))
    return tuple(sorted(pairs))


@dataclass(frozen=True)
class ModelParams:
    """Which model runs: the shared server if `server_url` is set, else an in-process engine."""

    checkpoint: str = "ram_plus_swin_large_14m"
    swin_config: str | None = None
    head_config: str | None = None
    tag_list: str | None = None
    tag_list_zh: str | None = None
    thresholds: str | None = None
    device: str = "auto"
    precision: str = "auto"
    batch_size: int | None = None
    exif_transpose: bool = True
    trust_pickle: bool = False
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
        values: dict[str, Any] = {}
        for name in MODEL_OPTION_NAMES:
            value = params.get(name)
            if value in (None, ""):
                value = env.get(f"RAM_ANNOTATE_{name.upper()}")
            if value not in (None, ""):
                values[name] = value
        if "batch_size" in values:
            values["batch_size"] = _opt_int(values["batch_size"], "batch_size")
        url = secrets.get("RAM_ANNOTATE_URL") or env.get("RAM_ANNOTATE_URL")
        auth = secrets.get("RAM_ANNOTATE_AUTH") or env.get("RAM_ANNOTATE_AUTH")
        return cls(
            **values,
            exif_transpose=bool(params.get("exif_transpose", True)),
            trust_pickle=bool(params.get("trust_pickle", False)),
            server_url=_opt_str(url),
            server_auth=_opt_str(auth),
        )

    def engine_args(self) -> argparse.Namespace:
        """The options as the namespace `ram_model.cli_options.engine_config_from_args` reads."""
        return argparse.Namespace(
            **{name: getattr(self, name) for name in MODEL_OPTION_NAMES},
            no_exif_transpose=not self.exif_transpose,
            trust_pickle=self.trust_pickle,
        )


@dataclass(frozen=True)
class TagParams:
    """Tag with RAM: where to write, which tags to keep, what to do with earlier results."""

    field: str = "ram"
    label_field: str | None = None
    threshold: float | None = None
    per_tag: tuple[tuple[str, float], ...] | None = None
    top_k: int | None = None
    synonyms: str | None = None
    chinese_names: bool = False
    overwrite: bool = False
    chunk_size: int = 64

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
    def run_key(self) -> str:
        return f"ram_tag_{self.field}"

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> TagParams:
        return cls(
            field=_opt_str(params.get("field")) or cls.field,
            label_field=_opt_str(params.get("label_field")),
            threshold=_opt_float(params.get("threshold"), "threshold"),
            per_tag=_per_tag(params.get("per_tag")),
            top_k=_opt_int(params.get("top_k"), "top_k"),
            synonyms=_opt_str(params.get("synonyms")),
            chinese_names=bool(params.get("chinese_names", False)),
            overwrite=bool(params.get("overwrite", False)),
            chunk_size=_opt_int(params.get("chunk_size"), "chunk_size") or cls.chunk_size,
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
