"""Export finetuning data: a label field -> RAM's official finetune JSON + Label Studio tasks.

Record building, validation and the JSON format belong to `ram_model.review.finetune`;
this module collects the inputs from FiftyOne. The export is all-or-nothing, images
included, even under kill -9: every file and copied image is written into a new generation
folder, which one rename then makes current (`plugin.jobs.export_commit`).
"""
from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import fiftyone.core.collections as foc

from plugin.errors import PluginInputError, RunConflictError
from plugin.fo_convert import distinct_labels, present_labels, tag_confidences
from plugin.jobs import JobResult, runs
from plugin.jobs.export_commit import ExportBusyError, ExportTransaction, crash_point
from ram_client.labelstudio.tasks import (LS_FROM_NAME, LS_LOCAL_FILES_PREFIX, LS_TO_NAME, SAMPLE_ID_KEY,
                                          local_files_url, ram_prediction, reviewed_annotation)
from plugin.params import ExportParams, ModelParams, TagParams
from plugin.review_round.params import work_dir
from ram_model import TagVocabulary
from ram_model.progress import ProgressFn
from ram_model.review import (
    FinetuneRecord,
    atomic_write_json,
    build_finetune_records,
    build_label_mapping,
    load_synonyms,
    write_finetune_json,
)

__all__ = ["LS_FROM_NAME", "LS_LOCAL_FILES_PREFIX", "LS_TO_NAME", "ExportResult", "export_finetune",
           "export_vocabulary", "tag_run_vocabulary"]

@dataclass
class ExportResult(JobResult):
    output_dir: str
    finetune_json: str
    tasks_json: str
    image_root: str | None
    records: int = 0
    skipped_unlabeled: int = 0
    skipped_missing_media: int = 0
    skipped_unreadable: int = 0
    skipped_no_mapped_label: int = 0
    missing_media: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    unmapped_labels: list[str] = field(default_factory=list)
    predictions_from: str | None = None
    warnings: list[str] = field(default_factory=list)


def _targets(params: ExportParams) -> list[str]:
    """The names an export writes into its folder."""
    return [params.finetune_name, params.tasks_name] + ([params.images_dir] if params.copy_images else [])


def _ls_image(path: str, document_root: str) -> str:
    url = local_files_url(path, document_root)
    if url is None:
        raise PluginInputError(
            f"Image {path} is outside the Label Studio document root {document_root}; set ls_document_root"
        )
    return url


def tag_run_vocabulary(dataset, ram_field: str | None) -> TagVocabulary | None:
    """The vocabulary Tag with RAM recorded for `ram_field`, or None without such a run.

    Export needs only tag names (and class thresholds for nothing but completeness), so
    it reads them here instead of loading a checkpoint that takes tens of seconds.
    """
    if not ram_field:
        return None
    run_key = TagParams(field=ram_field).run_key
    return runs.tag_vocabulary(runs.read_run_results(dataset, run_key), run_key)


def export_vocabulary(dataset, params: ExportParams, model: ModelParams) -> TagVocabulary:
    """Never a model load: the tag run's vocabulary when the RAM field has one, else the
    server's (one `/v1/info` request) when RAM_ANNOTATE_URL is set, else the tag files the
    options name (default: the packaged official lists)."""
    vocab = tag_run_vocabulary(dataset, params.ram_field)
    if vocab is not None:
        return vocab
    if model.server_url:
        from plugin.models.remote import RemoteTagger

        return RemoteTagger(model.server_url, auth=model.server_auth).vocab
    options = model.options
    return TagVocabulary.from_files(options.tag_list, options.tag_list_zh, options.thresholds)


def export_finetune(collection: foc.SampleCollection, vocab: TagVocabulary, params: ExportParams, *,
                    progress: ProgressFn | None = None) -> ExportResult:
    """Write the export for every labelled sample of `collection` whose image exists and was
    not recorded as unreadable by the tag run."""
    if len(collection) == 0:
        raise PluginInputError("The target view has no samples; nothing to export")
    ids, paths = collection.values(["id", "filepath"])
    out = _output_dir(params, paths)
    existing = [str(out / name) for name in _targets(params) if (out / name).exists()]
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
    error_field = TagParams(field=ram_field).error_field if ram_field else None
    unreadable = (collection.values(error_field) if error_field and dataset.has_sample_field(error_field)
                  else [None] * len(ids))

    result = ExportResult(str(out), str(out / params.finetune_name), str(out / params.tasks_name),
                          image_root=None, unmapped_labels=list(mapping.unmapped), predictions_from=ram_field)
    items, rows = [], {}
    for row, (sample_id, path, names, error) in enumerate(zip(ids, paths, labels, unreadable)):
        if names is None:
            result.skipped_unlabeled += 1
        elif error:
            result.skipped_unreadable += 1
            result.unreadable.append(path)
        elif not os.path.isfile(path):
            result.skipped_missing_media += 1
            result.missing_media.append(path)
        else:
            items.append((path, names, None))
            rows[path] = (row, sample_id, names)
    records, report = build_finetune_records(items, mapping, on_unmapped=params.on_unmapped)
    result.skipped_no_mapped_label = len(report.skipped_images)
    if not records:
        raise PluginInputError(
            f"Nothing to export: {len(items)} labelled samples with images, none with a label that maps to a "
            f"RAM tag (unmapped: {list(mapping.unmapped)[:10]})"
        )

    origin = [rows[record.image_path] for record in records]  # (row, sample id, reviewed labels) per record
    created = not out.exists()
    transaction = ExportTransaction(out, _targets(params), optional_names=(params.images_dir,))
    try:
        staging = transaction.begin()
    except ExportBusyError as e:
        raise RunConflictError(str(e)) from None
    try:
        if params.copy_images:
            records = _copy_images(records, [sid for _, sid, _ in origin], staging / params.images_dir,
                                   params.images_dir, progress)
        images = [str(out / r.image_path) if params.copy_images else r.image_path for r in records]
        document_root = params.ls_document_root or (str(out) if params.copy_images else os.path.commonpath(
            [os.path.dirname(p) for p in images]))
        model_version = ram_settings.get("model_version") if ram_settings else None
        tasks = [
            {
                "data": {"image": _ls_image(image, document_root), SAMPLE_ID_KEY: sample_id},
                "annotations": reviewed_annotation(names),  # the reviewed labels, not only RAM's guess
                "predictions": ram_prediction(confidences[row], mapping, model_version) if ram_field else [],
            }
            for image, (row, sample_id, names) in zip(images, origin)
        ]
        if not params.copy_images and not params.ls_document_root:
            result.warnings.append(
                f"label_studio_tasks.json names the images relative to {document_root}: start Label Studio with "
                f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={document_root} (or export with copy_images, or give "
                "ls_document_root), else its image links do not resolve")
        write_finetune_json(records, staging / params.finetune_name,
                            image_root=staging if params.copy_images else None, num_classes=len(vocab))
        atomic_write_json(staging / params.tasks_name, tasks)
        transaction.commit()
    except BaseException:
        transaction.abort()
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    result.records = len(records)
    result.image_root = str(out) if params.copy_images else None
    return result


def _output_dir(params: ExportParams, paths: Sequence[str]) -> Path:
    """The given folder, or one of its own under the work folder (`exports/<photo folder>-<digest>`):
    an export never writes into someone's photo folder unless asked to."""
    if params.output_dir:
        return Path(params.output_dir).expanduser().resolve()
    photos = Path(os.path.commonpath([os.path.dirname(p) for p in paths])).resolve()
    digest = hashlib.sha256(str(photos).encode()).hexdigest()[:8]
    return (work_dir() / "exports" / f"{photos.name or 'root'}-{digest}").resolve()


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
        crash_point(f"image:{done}")
    return copied
