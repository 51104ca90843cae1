"""The parameters of the plugin's jobs (tag, disagreements, export, similarity, detect), declared once.

Each job's frozen params class declares its options on its fields (`ram_model.option`):
`from_mapping` parses an operator's `ctx.params` or the CLI's flags with them
(`job_values`), the operator form draws its inputs from them (`add_option_inputs`) and the
`ram-annotate fiftyone` sub-command its flags (`plugin.cli.common.add_job`), so a key name,
a default or a help text lives here only, and `execute` never reads a raw `ctx.params` key.
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
from ram_model.option import is_given, option, option_values

__all__ = [
    "DetectDisagreementParams",
    "DetectParams",
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


def job_values(cls: type, params: Mapping[str, Any]) -> dict[str, Any]:
    """The options `cls` declares (`ram_model.option`) that a form or the CLI gave, parsed;
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


_SYNONYMS_HELP = "JSON/YAML mapping of label -> RAM tag(s)"


def synonyms_option() -> Any:
    """The synonym file every job that maps labels onto RAM tags takes."""
    return option(None, _SYNONYMS_HELP, str, label="Synonym file (optional)")


def overwrite_option(help: str) -> Any:
    return option(False, help, bool, label="Overwrite")


@dataclass(frozen=True)
class TagParams:
    """Tag with RAM: where to write, which tags to keep, what to do with earlier results.
    Which tags fire (`policy`) comes from the model options' threshold group."""

    field: str = option("ram", "the fo.Classifications field that receives RAM's tags with their confidences", str,
                        label="Output field", in_form=False)
    label_field: str | None = option(
        None, "also store RAM's score per class of this field (or 'tags'); only the RAM tags its labels map onto "
        "are computed and written, unless --all-ram-tags", str, in_form=False)
    policy: ThresholdPolicy = dataclass_field(default_factory=ThresholdPolicy)
    synonyms: str | None = synonyms_option()
    chinese_names: bool = option(False, "store each tag's Chinese name as name_zh (writing gets slower)", bool,
                                 label="Store Chinese tag names")
    # Evidence maps (ram_model.evidence): a box and a heatmap per fired tag (plugin.fo_evidence).
    evidence: bool = option(
        False, "also write where in the image RAM sees each fired tag: a coarse box per tag (<field>_evidence) "
        "and a heatmap (<field>_heatmap); in-process model only", bool, label="Evidence maps")
    overwrite: bool = overwrite_option("replace the output field on every sample, even if other settings made it")
    chunk_size: int = option(64, "samples per write", int, low=1, in_form=False)
    # With a label field, only the RAM tags its labels map onto are computed and written
    # (the same scores, faster); True keeps every RAM tag.
    all_ram_tags: bool = option(
        False, "with a label field, still compute and write every RAM tag (off: only those its labels map onto, "
        "the same scores, faster)", bool, label="Keep every RAM tag", in_form=False)
    # Labels that map onto no RAM tag are scored as open-set classes (plugin.models.open_set); False: never predicted.
    open_set_labels: bool = option(
        True, "score labels that map onto no RAM tag as open-set classes, through CLIP's text encoder "
        "(RAM_ANNOTATE_TEXT_ENCODER, default CLIP ViT-B/16; threshold 0.5)", bool,
        label="Score labels that are not RAM tags", in_form=False)

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
        return cls(**job_values(cls, params), policy=_model_options(params, env).threshold_policy())


@dataclass(frozen=True)
class DisagreementParams:
    """Find disagreements between a RAM field and a label field, written under `output`."""

    ram_field: str = option("ram", "a field written by Tag with RAM", str, in_form=False)
    label_field: str = option("ground_truth", "Classification(s)/Detections field, or 'tags'", str, in_form=False)
    output: str | None = option(None, "output field prefix (default: <ram-field>_vs_<label-field>)", str,
                                in_form=False)
    view_name: str | None = option(None, "name of the saved view sorted by disagreement", str, in_form=False)
    synonyms: str | None = synonyms_option()
    overwrite: bool = overwrite_option("replace output fields that were not written by this operator")

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
        return cls(**job_values(cls, params))


@dataclass(frozen=True)
class ExportParams:
    """Export a (corrected) label field as RAM finetune JSON plus Label Studio tasks."""

    label_field: str = option("ground_truth", "the corrected labels to export", str, in_form=False)
    output_dir: str = option(
        "", "output folder: receives ram_finetune.json, label_studio_tasks.json (and images/); empty: a folder of its "
        "own under the work folder (exports/), never the photo folder; required when copying images", str,
        label="Output folder", in_form=False)
    ram_field: str | None = option(
        "ram", "RAM field for Label Studio predictions; empty: tasks without predictions. Its tag run also supplies "
        "RAM's vocabulary and the images it could not read (left out)", str,
        label="RAM field for Label Studio predictions")
    copy_images: bool = option(False, "copy images into <output>/images instead of pointing at them", bool,
                               label="Copy images")
    on_unmapped: Literal["skip", "fail"] = option("skip", "what to do with a label that maps onto no RAM tag", str,
                                                  choices=("skip", "fail"), label="Labels with no RAM tag")
    synonyms: str | None = synonyms_option()
    ls_document_root: str | None = option(
        None, "Label Studio local-files root that task image paths are written relative to; default: the output "
        "folder when copying, else the images' common folder", str,
        label="Label Studio local-files root (optional)")
    overwrite: bool = option(False, "replace an earlier export in the output folder", bool,
                             label="Overwrite existing export files")

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
        values = job_values(cls, params)
        if "ram_field" in params and not is_given(params["ram_field"]):
            values["ram_field"] = None  # an emptied RAM field means: tasks without predictions
        values["output_dir"] = os.path.expanduser(values.get("output_dir", ""))
        return cls(**values)


_BRAIN_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class SimilarityParams:
    """Compute RAM similarity: embeddings into `embeddings_field`, a Brain index under `brain_key`."""

    embeddings_field: str = option("ram_embedding", "receives RAM's pooled 512-d image embedding per sample", str,
                                   label="Embeddings field", in_form=False)
    brain_key: str = option("ram_sim", "name of the similarity index (sklearn backend, cosine)", str,
                            label="Brain key", in_form=False)
    text_queries: bool = option(
        True, "let the App search by a RAM tag name (its text embedding, same space); registers ram-annotate's "
        "model-zoo source on this machine", bool, label="Text queries by tag name")
    overwrite: bool = overwrite_option("replace a field or brain run that this job did not write")
    chunk_size: int = option(64, "samples per write", int, low=1, in_form=False)

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
        return cls(**job_values(cls, params))


@dataclass(frozen=True)
class DetectParams:
    """Detect RAM's tags: which models, which boxes count, where they go. Which tags prompt the
    detector (`policy`) comes from the model options' threshold group."""

    field: str = option("ram_detections", "the fo.Detections field that receives the boxes (with masks when "
                                          "segmenting)", str, label="Output field", in_form=False)
    detector: str = option(
        "grounding-dino-tiny", "grounding-dino-tiny, grounding-dino-base, owlv2, a Hugging Face repo id or folder "
        "(from the local cache), or random:tiny (random weights, for trying)", str, label="Detector", required=True)
    segmenter: str | None = option(None, "sam, sam-large, a repo id or folder, or random:tiny: adds instance masks",
                                   str, label="Segmenter (optional)")
    box_threshold: float | None = option(None, "Grounding DINO 0.25, OWLv2 0.1 by default", float, low=0.0,
                                         high=1.0, label="Box threshold (optional)")
    text_threshold: float | None = option(None, "Grounding DINO 0.2 by default", float, low=0.0, high=1.0,
                                          in_form=False)
    label_field: str | None = option(None, "prompt only RAM tags that map onto this field's classes, and name "
                                           "boxes by them", str, in_form=False)
    synonyms: str | None = synonyms_option()
    policy: ThresholdPolicy = dataclass_field(default_factory=ThresholdPolicy)
    overwrite: bool = overwrite_option("replace detections made by other models or settings")
    chunk_size: int = option(16, "samples per write", int, low=1, in_form=False)

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any], *, env: Mapping[str, str] | None = None) -> DetectParams:
        """`threshold`, `tag_threshold` and `top_k` are the model options of that name."""
        return cls(**job_values(cls, params), policy=_model_options(params, env).threshold_policy())


@dataclass(frozen=True)
class DetectDisagreementParams:
    """Compare RAM's boxes with the existing ones (FiftyOne's evaluate_detections)."""

    pred_field: str = option("ram_detections", "RAM's detections", str, label="RAM detections", in_form=False)
    gt_field: str = option("ground_truth", "the existing boxes", str, label="Existing boxes", in_form=False)
    iou: float = option(0.5, "match IoU", float, low=0.0, high=1.0, label="Match IoU")
    min_score: float = option(0.5, "confidence a detection needs to count as likely missing", float, low=0.0,
                              high=1.0, label="Minimum confidence for 'likely missing'")
    output: str | None = option(None, "output prefix (default: <pred>_vs_<gt>)", str, in_form=False)
    overwrite: bool = overwrite_option("replace output fields this job did not write")

    @property
    def prefix(self) -> str:
        return self.output or f"{self.pred_field}_vs_{self.gt_field}"

    @property
    def eval_key(self) -> str:
        return f"{self.prefix}_eval"

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> DetectDisagreementParams:
        return cls(**job_values(cls, params))
