"""Fine-tune RAM on reviewed labels, register the new version, and optionally re-tag with it.

Training is `ram_model.finetune.finetune` and versioning `ram_model.weights.registry.ModelRegistry`
(docs/seams.md); this module gathers the data from FiftyOne and ties the steps together so
that every step can be repeated safely:

* the training JSON is named by its content's digest, and the run folder by the digests
  of data and recipe, so a rerun after a crash (even kill -9) resumes the same run from
  its last finished epoch, and a rerun after it finished trains nothing;
* registering is idempotent (a version is named by the content of its weights);
* re-tagging goes through Tag with RAM, which skips samples already tagged by this version.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fiftyone.core.collections as foc

from plugin.models.engine_cache import get_tagger
from plugin.errors import PluginInputError
from plugin.review_round.review_data import reviewed_data, write_training_json
from plugin.jobs.tag import tag_samples
from plugin.params import ModelParams, TagParams
from plugin.review_round.params import FinetuneJobParams, work_dir
from ram_model.progress import ProgressFn
from plugin.jobs import JobResult

__all__ = ["FinetuneJobResult", "METRIC_NAMES", "finetune_on_reviews", "retag", "metric_rows"]

METRIC_NAMES = ("micro_f1", "macro_f1", "micro_map", "macro_map")


@dataclass
class FinetuneJobResult(JobResult):
    run_dir: str
    data: str
    model_name: str
    version: str
    checkpoint: str
    model_uri: str
    trained: bool
    promoted: bool | None = None
    promotion: str = ""
    examples: int = 0
    metrics: list[dict[str, Any]] = field(default_factory=list)
    retag: dict[str, Any] | None = None


def metric_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Base vs new validation metrics, one row per metric, for the result table."""
    base, new = metrics.get("base") or {}, metrics.get("new") or {}
    rows = []
    for name in METRIC_NAMES:
        if name in base or name in new:
            b, n = base.get(name), new.get(name)
            rows.append({"metric": name, "base": b, "new": n,
                         "change": None if b is None or n is None else round(n - b, 4)})
    return rows


def _local_only(model: ModelParams) -> ModelParams:
    """Training needs the weights in this process; a configured server cannot lend them."""
    if model.server_url:
        raise PluginInputError("Fine-tuning runs in-process: name the base checkpoint in the model options "
                               "(the shared server's weights cannot be trained from here)")
    return model


def _training_data(collection: foc.SampleCollection, params: FinetuneJobParams, vocab_names: list[str],
                   folder: Path) -> tuple[str, str | None, int]:
    if params.data:
        return str(Path(params.data).expanduser()), params.image_root, -1
    assert params.reviewed_field is not None  # the params require a field or a file
    data = reviewed_data(collection, params.reviewed_field, vocab_names, synonyms=params.synonyms)
    records = data.records()
    path, root = write_training_json(records, folder / "data", len(vocab_names))
    return str(path), root, len(records)


def finetune_on_reviews(collection: foc.SampleCollection, params: FinetuneJobParams, model: ModelParams, *,
                        progress: ProgressFn | None = None,
                        should_stop: Callable[[], bool] | None = None) -> FinetuneJobResult:
    from ram_model.finetune import FinetuneConfig, finetune
    from ram_model.weights.registry import ModelRegistry

    model = _local_only(model)
    base_tagger = get_tagger(model)
    root = Path(params.output_dir).expanduser() if params.output_dir else work_dir() / "finetune"
    data, image_root, examples = _training_data(collection, params, list(base_tagger.vocab.names), root)
    config = FinetuneConfig(data=(data,), image_root=image_root, base=model.options.engine_config(), output="",
                            device=model.options.device, **params.training)
    run_id = hashlib.sha256(json.dumps({"recipe": config.recipe(), "base": base_tagger.model_version,
                                        "data": _digest(data)}, sort_keys=True).encode()).hexdigest()[:12]
    run_dir = root / "runs" / f"{params.model_name}-{run_id}"
    config = dataclasses.replace(config, output=str(run_dir))
    finished = (run_dir / "card.json").is_file() and (run_dir / "model.safetensors").is_file()
    if not finished:
        finetune(config, progress=_training_progress(progress) if progress else None, should_stop=should_stop)

    registry_root = (Path(params.registry_root).expanduser() if params.registry_root else root / "models").resolve()
    registry = ModelRegistry(registry_root)
    version = registry.register(params.model_name, run_dir)
    result = FinetuneJobResult(
        run_dir=str(run_dir), data=data, model_name=params.model_name, version=version.version,
        checkpoint=str(version.checkpoint),
        model_uri=f"registry://{registry_root}/{params.model_name}@{version.version}",
        trained=not finished, examples=examples, metrics=metric_rows(version.metrics),
    )
    if params.promote:
        promotion = registry.promote(params.model_name, version.version, min_val_images=params.min_val_images)
        result.promoted, result.promotion = promotion.promoted, promotion.reason
    if params.retag_field:
        result.retag = retag(collection, model, str(version.checkpoint), params.retag_field, progress=progress)
    return result


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _training_progress(progress: ProgressFn) -> Callable[[dict[str, Any]], None]:
    """Fine-tuning events -> (done, total) steps across all epochs (evaluation shows as its own pass)."""

    def report(event: dict[str, Any]) -> None:
        steps, step = int(event.get("steps") or 0), int(event.get("step") or 0)
        if event.get("phase") == "train":
            epochs, epoch = int(event.get("epochs") or 1), int(event.get("epoch") or 1)
            progress((epoch - 1) * steps + step, max(epochs * steps, 1))
        else:
            progress(step, max(steps, 1))

    return report


def retag(collection: foc.SampleCollection, model: ModelParams, checkpoint: str, field_name: str, *,
          thresholds: str | None = None, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Tag the view with another checkpoint (or thresholds file) into `field_name`, through Tag with RAM.

    The new model keeps the device and batch settings of `model`; its configs, vocabulary
    and thresholds come with the checkpoint (a fine-tuned one is self-contained), unless a
    thresholds file is given.
    """
    options = dataclasses.replace(model.options, checkpoint=checkpoint, swin_config=None, head_config=None,
                                  tag_list=None, tag_list_zh=None, thresholds=thresholds) \
        if checkpoint != model.options.checkpoint else dataclasses.replace(model.options, thresholds=thresholds)
    tagger = get_tagger(ModelParams(options=options))
    tagged = tag_samples(collection, tagger, TagParams(field=field_name, policy=options.threshold_policy()),
                         progress=progress)
    return tagged.to_dict()
