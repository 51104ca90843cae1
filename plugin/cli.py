"""`ram-annotate fiftyone tag|disagreements|export|similarity`: the operators' jobs without the App.

The sub-commands parse flags into the same params objects the operators build and call
the same job functions, so a scripted run and an App run write identical results.
FiftyOne is imported only when a sub-command runs, to keep `ram-annotate --help` fast.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from plugin.errors import PluginInputError
from ram_model.cli_options import add_model_options

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fiftyone", help="tag, find disagreements and export finetuning data on a FiftyOne dataset",
        description="Run the FiftyOne plugin's jobs on a dataset without the App.",
    )
    jobs = parser.add_subparsers(dest="fiftyone_command", required=True)
    _add_tag(jobs)
    _add_disagreements(jobs)
    _add_export(jobs)
    _add_similarity(jobs)
    from plugin.cli_detect import add_detect_command

    add_detect_command(jobs, add_target=_add_target, run=_run, target=_target, model=_model, progress=_progress)
    from plugin.cli_review import add_review_commands

    add_review_commands(jobs, add_target=_add_target, add_server=_add_server)


def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="FiftyOne dataset name")
    parser.add_argument("--view", help="a saved view of the dataset to work on (default: all samples)")
    parser.add_argument("--no-progress", action="store_true")


def _add_server(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server-url", help="use a running ram-annotate server (default: $RAM_ANNOTATE_URL; "
                                             "credentials from $RAM_ANNOTATE_AUTH as user:password)")


def _add_tag(jobs: argparse._SubParsersAction) -> None:
    p = jobs.add_parser("tag", help="write RAM tags into a Classifications field (resumable)")
    _add_target(p)
    p.add_argument("--field", default="ram", help="output field (default: ram)")
    p.add_argument("--label-field", help="also store RAM's score per class of this field (or 'tags'); only the "
                   "RAM tags its labels map onto are computed and written, unless --all-ram-tags")
    p.add_argument("--all-ram-tags", action="store_true",
                   help="with --label-field, still compute and write every RAM tag (slower)")
    p.add_argument("--synonyms", help="JSON/YAML mapping of label -> RAM tag(s)")
    p.add_argument("--chinese-names", action="store_true", help="store each tag's Chinese name as name_zh")
    p.add_argument("--evidence", action="store_true",
                   help="also write evidence maps: a box per fired tag (FIELD_evidence) and a heatmap (FIELD_heatmap)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the field on every sample even if other settings wrote it")
    p.add_argument("--chunk-size", type=int, default=64, help="samples per write (default: 64)")
    add_model_options(p)
    _add_server(p)
    p.set_defaults(func=_cmd_tag)


def _add_disagreements(jobs: argparse._SubParsersAction) -> None:
    p = jobs.add_parser("disagreements", help="flag likely missing/wrong labels and save a ranked view")
    _add_target(p)
    p.add_argument("--ram-field", default="ram")
    p.add_argument("--label-field", required=True, help="Classification(s)/Detections field, or 'tags'")
    p.add_argument("--output", help="output field prefix (default: <ram-field>_vs_<label-field>)")
    p.add_argument("--view-name", help="name of the saved view sorted by disagreement")
    p.add_argument("--synonyms", help="JSON/YAML mapping of label -> RAM tag(s)")
    p.add_argument("--overwrite", action="store_true", help="replace output fields this job did not write")
    p.set_defaults(func=_cmd_disagreements)


def _add_export(jobs: argparse._SubParsersAction) -> None:
    p = jobs.add_parser("export", help="write RAM finetune JSON + Label Studio tasks from a label field")
    _add_target(p)
    p.add_argument("--label-field", required=True)
    p.add_argument("--out", default="", help="output folder (default: the images' common folder; "
                                             "required with --copy-images)")
    p.add_argument("--ram-field", default="ram", help="RAM field for task predictions ('' for none)")
    p.add_argument("--copy-images", action="store_true", help="copy images into <out>/images")
    p.add_argument("--on-unmapped", choices=["skip", "fail"], default="skip")
    p.add_argument("--synonyms", help="JSON/YAML mapping of label -> RAM tag(s)")
    p.add_argument("--ls-document-root", help="Label Studio local-files root that task paths are relative to")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    add_model_options(p, thresholds=False)
    _add_server(p)
    p.set_defaults(func=_cmd_export)


def _add_similarity(jobs: argparse._SubParsersAction) -> None:
    p = jobs.add_parser("similarity", help="store RAM embeddings and build a similarity index (sort by image or tag)")
    _add_target(p)
    p.add_argument("--embeddings-field", default="ram_embedding", help="field for the 512-d embeddings")
    p.add_argument("--brain-key", default="ram_sim", help="name of the similarity index")
    p.add_argument("--no-text-queries", action="store_true",
                   help="do not register the model-zoo source the App needs for queries by tag name")
    p.add_argument("--overwrite", action="store_true", help="replace a field or brain run this job did not write")
    add_model_options(p, thresholds=False)
    _add_server(p)
    p.set_defaults(func=_cmd_similarity)


def _model(args: argparse.Namespace):
    from plugin.params import ModelParams

    secrets = {"RAM_ANNOTATE_URL": args.server_url} if args.server_url else None
    return ModelParams.from_mapping(vars(args), secrets=secrets)


def _target(args: argparse.Namespace):
    import fiftyone as fo

    if not fo.dataset_exists(args.dataset):
        raise PluginInputError(f"No FiftyOne dataset named {args.dataset!r}; datasets: {fo.list_datasets()}")
    dataset = fo.load_dataset(args.dataset)
    if args.view:
        if not dataset.has_saved_view(args.view):
            raise PluginInputError(f"Dataset {args.dataset!r} has no saved view {args.view!r}: "
                                   f"{dataset.list_saved_views()}")
        return dataset.load_saved_view(args.view)
    return dataset


def _progress(args: argparse.Namespace, what: str) -> Callable[[int, int], None] | None:
    if args.no_progress:
        return None
    from tqdm import tqdm

    bar = tqdm(desc=what, unit="sample", file=sys.stderr)

    def report(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return report


def _run(job: Callable[[], Any]) -> int:
    from ram_model import RamModelError

    try:
        result = job()
    except (PluginInputError, RamModelError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    return 0


def _cmd_tag(args: argparse.Namespace) -> int:
    from plugin.engine_cache import get_tagger
    from plugin.jobs.tag import tag_samples
    from plugin.params import TagParams

    def job():
        params = TagParams(field=args.field, label_field=args.label_field, policy=_model(args).options.threshold_policy(),
                           synonyms=args.synonyms, chinese_names=args.chinese_names, overwrite=args.overwrite,
                           chunk_size=args.chunk_size, all_ram_tags=args.all_ram_tags, evidence=args.evidence)
        collection = _target(args)
        return tag_samples(collection, get_tagger(_model(args)), params, progress=_progress(args, "tagging"))

    return _run(job)


def _cmd_disagreements(args: argparse.Namespace) -> int:
    from plugin.jobs.disagreements import find_sample_disagreements
    from plugin.params import DisagreementParams

    def job():
        params = DisagreementParams(ram_field=args.ram_field, label_field=args.label_field, output=args.output,
                                    view_name=args.view_name, synonyms=args.synonyms, overwrite=args.overwrite)
        return find_sample_disagreements(_target(args), params, progress=_progress(args, "comparing"))

    return _run(job)


def _cmd_export(args: argparse.Namespace) -> int:
    from plugin.jobs.export import export_finetune, export_vocabulary
    from plugin.params import ExportParams

    def job():
        params = ExportParams(label_field=args.label_field, output_dir=args.out, ram_field=args.ram_field or None,
                              copy_images=args.copy_images, on_unmapped=args.on_unmapped, synonyms=args.synonyms,
                              ls_document_root=args.ls_document_root, overwrite=args.overwrite)
        collection = _target(args)
        vocab = export_vocabulary(collection._root_dataset, params, _model(args))
        return export_finetune(collection, vocab, params, progress=_progress(args, "exporting"))

    return _run(job)


def _cmd_similarity(args: argparse.Namespace) -> int:
    from plugin.engine_cache import get_tagger
    from plugin.jobs.similarity import compute_ram_similarity
    from plugin.params import SimilarityParams

    def job():
        params = SimilarityParams(embeddings_field=args.embeddings_field, brain_key=args.brain_key,
                                  text_queries=not args.no_text_queries, overwrite=args.overwrite)
        model = _model(args)
        return compute_ram_similarity(_target(args), get_tagger(model), params, model=model,
                                      progress=_progress(args, "embedding"))

    return _run(job)
