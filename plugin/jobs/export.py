"""Export finetuning data: a label field -> RAM's official finetune JSON + Label Studio tasks.

Record building, validation and the JSON format belong to `ram_model.review.finetune`;
this module collects the inputs from FiftyOne and makes the export all-or-nothing: every
file (and copied image) is first written into a hidden staging folder inside the output
folder, then moved into place, so a failure leaves the previous export untouched.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import fiftyone.core.collections as foc

from plugin.errors import PluginInputError, RunConflictError
from plugin.fo_convert import distinct_labels, present_labels, tag_confidences
from plugin.jobs import runs
from plugin.labelstudio.tasks import LS_FROM_NAME, LS_LOCAL_FILES_PREFIX, LS_TO_NAME, local_files_url, ram_prediction
from plugin.params import ExportParams, TagParams
from ram_model import TagVocabulary
from ram_model.review import (
    FinetuneRecord,
    atomic_write_json,
    build_finetune_records,
    build_label_mapping,
    load_synonyms,
    write_finetune_json,
)

__all__ = ["LS_FROM_NAME", "LS_LOCAL_FILES_PREFIX", "LS_TO_NAME", "ExportResult", "export_finetune"]

ProgressFn = Callable[[int, int], None]

@dataclass
class ExportResult:
    output_dir: str
    finetune_json: str
    tasks_json: str
    image_root: str | None
    records: int = 0
    skipped_unlabeled: int = 0
    skipped_missing_media: int = 0
    skipped_no_mapped_label: int = 0
    missing_media: list[str] = field(default_factory=list)
    unmapped_labels: list[str] = field(default_factory=list)
    predictions_from: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _targets(out: Path, params: ExportParams) -> list[Path]:
    paths = [out / params.finetune_name, out / params.tasks_name]
    return paths + ([out / params.images_dir] if params.copy_images else [])


def _ls_image(path: str, document_root: str) -> str:
    url = local_files_url(path, document_root)
    if url is None:
        raise PluginInputError(
            f"Image {path} is outside the Label Studio document root {document_root}; set ls_document_root"
        )
    return url


def export_finetune(collection: foc.SampleCollection, vocab: TagVocabulary, params: ExportParams, *,
                    progress: ProgressFn | None = None) -> ExportResult:
    """Write the export for every labelled sample of `collection` whose image exists."""
    if len(collection) == 0:
        raise PluginInputError("The target view has no samples; nothing to export")
    ids, paths = collection.values(["id", "filepath"])
    out = _output_dir(params, paths)
    existing = [str(p) for p in _targets(out, params) if p.exists()]
    if existing and not params.overwrite:
        raise RunConflictError(f"Export files already exist: {existing}; choose another folder or enable overwrite")
    dataset = collection._root_dataset
    synonyms = load_synonyms(params.synonyms) if params.synonyms else None
    mapping = build_label_mapping(distinct_labels(dataset, params.label_field), vocab.names,
                                  synonyms=synonyms, ram_names_zh=vocab.names_zh)
    labels = present_labels(collection, params.label_field)
    ram_field = params.ram_field if params.ram_field and dataset.has_sample_field(params.ram_field) else None
    confidences = tag_confidences(collection, ram_field) if ram_field else [None] * len(ids)
    ram_settings = runs.read_run_settings(dataset, TagParams(field=ram_field).run_key) if ram_field else None

    result = ExportResult(str(out), str(out / params.finetune_name), str(out / params.tasks_name),
                          image_root=None, unmapped_labels=list(mapping.unmapped), predictions_from=ram_field)
    items, rows = [], {}
    for row, (sample_id, path, names) in enumerate(zip(ids, paths, labels)):
        if names is None:
            result.skipped_unlabeled += 1
        elif not os.path.isfile(path):
            result.skipped_missing_media += 1
            result.missing_media.append(path)
        else:
            items.append((path, names, None))
            rows[path] = (row, sample_id)
    records, report = build_finetune_records(items, mapping, on_unmapped=params.on_unmapped)
    result.skipped_no_mapped_label = len(report.skipped_images)
    if not records:
        raise PluginInputError(
            f"Nothing to export: {len(items)} labelled samples with images, none with a label that maps to a "
            f"RAM tag (unmapped: {list(mapping.unmapped)[:10]})"
        )

    origin = [rows[record.image_path] for record in records]  # (row, sample id) per record
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".ram-export-", dir=out))
    try:
        if params.copy_images:
            records = _copy_images(records, [sid for _, sid in origin], staging / params.images_dir,
                                   params.images_dir, progress)
        images = [str(out / r.image_path) if params.copy_images else r.image_path for r in records]
        document_root = params.ls_document_root or (str(out) if params.copy_images else os.path.commonpath(
            [os.path.dirname(p) for p in images]))
        model_version = ram_settings.get("model_version") if ram_settings else None
        tasks = [
            {
                "data": {"image": _ls_image(image, document_root), "fiftyone_id": sample_id},
                "predictions": ram_prediction(confidences[row], mapping, model_version) if ram_field else [],
            }
            for image, (row, sample_id) in zip(images, origin)
        ]
        write_finetune_json(records, staging / params.finetune_name,
                            image_root=staging if params.copy_images else None, num_classes=len(vocab))
        atomic_write_json(staging / params.tasks_name, tasks)
        _move_into_place(staging, out, params)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    result.records = len(records)
    result.image_root = str(out) if params.copy_images else None
    return result


def _output_dir(params: ExportParams, paths: Sequence[str]) -> Path:
    """The given folder, or (without copying) the images' common folder: the JSON next to the images."""
    if params.output_dir:
        return Path(params.output_dir).expanduser().resolve()
    return Path(os.path.commonpath([os.path.dirname(p) for p in paths])).resolve()


def _copy_images(records: Sequence[FinetuneRecord], sample_ids: Sequence[str], folder: Path,
                 relative_dir: str, progress: ProgressFn | None) -> list[FinetuneRecord]:
    """Copy each image as <sample id><suffix>: unique even when source names collide."""
    folder.mkdir()
    copied = []
    for done, (record, sample_id) in enumerate(zip(records, sample_ids), 1):
        name = f"{sample_id}{Path(record.image_path).suffix.lower()}"
        shutil.copy2(record.image_path, folder / name)
        copied.append(FinetuneRecord(f"{relative_dir}/{name}", record.caption, record.union_label_id,
                                     record.parse_label_id))
        if progress is not None and (done % 100 == 0 or done == len(records)):
            progress(done, len(records))
    return copied


def _move_into_place(staging: Path, out: Path, params: ExportParams) -> None:
    """Replace the previous export: the images folder first, the JSON files (which point at it) last."""
    if params.copy_images:
        target = out / params.images_dir
        if target.exists():
            old = staging / ".previous-images"
            os.replace(target, old)
        os.replace(staging / params.images_dir, target)
    for name in (params.tasks_name, params.finetune_name):
        os.replace(staging / name, out / name)
