"""`ram-annotate fiftyone tag|disagreements|export|similarity`: the operators' jobs without the App.

The sub-commands parse flags into the same params objects the operators build and call
the same job functions, so a scripted run and an App run write identical results.
FiftyOne is imported only when a sub-command runs, to keep `ram-annotate --help` fast.
"""
from __future__ import annotations

import argparse

from plugin.cli.common import add_server, add_target, model_params, progress, run, target
from ram_model.cli.options import add_model_options
from ram_model.scale.options import add_ray_options

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
    from plugin.cli.detect import add_detect_commands

    add_detect_commands(jobs)
    from plugin.cli.review import add_review_commands

    add_review_commands(jobs, add_target=add_target, add_server=add_server)


def _add_tag(jobs: argparse._SubParsersAction) -> None:
    p = jobs.add_parser("tag", help="write RAM tags into a Classifications field (resumable)")
    add_target(p)
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
    add_server(p)
    add_ray_options(p)
    p.set_defaults(func=_cmd_tag)


def _add_disagreements(jobs: argparse._SubParsersAction) -> None:
    p = jobs.add_parser("disagreements", help="flag likely missing/wrong labels and save a ranked view")
    add_target(p)
    p.add_argument("--ram-field", default="ram")
    p.add_argument("--label-field", required=True, help="Classification(s)/Detections field, or 'tags'")
    p.add_argument("--output", help="output field prefix (default: <ram-field>_vs_<label-field>)")
    p.add_argument("--view-name", help="name of the saved view sorted by disagreement")
    p.add_argument("--synonyms", help="JSON/YAML mapping of label -> RAM tag(s)")
    p.add_argument("--overwrite", action="store_true", help="replace output fields this job did not write")
    p.set_defaults(func=_cmd_disagreements)


def _add_export(jobs: argparse._SubParsersAction) -> None:
    p = jobs.add_parser("export", help="write RAM finetune JSON + Label Studio tasks from a label field")
    add_target(p)
    p.add_argument("--label-field", required=True)
    p.add_argument("--out", default="", help="output folder (default: a folder of its own under "
                                             "$RAM_ANNOTATE_WORK_DIR/exports, never the photo folder; "
                                             "required with --copy-images)")
    p.add_argument("--ram-field", default="ram", help="RAM field for task predictions ('' for none)")
    p.add_argument("--copy-images", action="store_true", help="copy images into <out>/images")
    p.add_argument("--on-unmapped", choices=["skip", "fail"], default="skip")
    p.add_argument("--synonyms", help="JSON/YAML mapping of label -> RAM tag(s)")
    p.add_argument("--ls-document-root", help="Label Studio local-files root that task paths are relative to")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    add_model_options(p, thresholds=False)
    add_server(p)
    p.set_defaults(func=_cmd_export)


def _add_similarity(jobs: argparse._SubParsersAction) -> None:
    p = jobs.add_parser("similarity", help="store RAM embeddings and build a similarity index (sort by image or tag)")
    add_target(p)
    p.add_argument("--embeddings-field", default="ram_embedding", help="field for the 512-d embeddings")
    p.add_argument("--brain-key", default="ram_sim", help="name of the similarity index")
    p.add_argument("--no-text-queries", action="store_true",
                   help="do not register the model-zoo source the App needs for queries by tag name")
    p.add_argument("--overwrite", action="store_true", help="replace a field or brain run this job did not write")
    add_model_options(p, thresholds=False)
    add_server(p)
    p.set_defaults(func=_cmd_similarity)


def _cmd_tag(args: argparse.Namespace) -> int:
    from plugin.errors import PluginInputError
    from plugin.models.engine_cache import get_tagger
    from plugin.jobs.tag import tag_samples
    from plugin.params import TagParams

    def job():
        params = TagParams(field=args.field, label_field=args.label_field, policy=model_params(args).options.threshold_policy(),
                           synonyms=args.synonyms, chinese_names=args.chinese_names, overwrite=args.overwrite,
                           chunk_size=args.chunk_size, all_ram_tags=args.all_ram_tags, evidence=args.evidence)
        collection = target(args)
        if args.ray:  # the model on a Ray cluster (ram_model.scale), results written here in bulk
            if args.evidence:  # before a cluster starts: the maps need the model's gradients here
                raise PluginInputError("--evidence runs in this process only; drop --ray (or --evidence)")
            from plugin.ray_tagger import ray_tagger
            from ram_model.scale.run import RaySettings

            with ray_tagger(model_params(args), RaySettings.from_args(args)) as tagger:
                return tag_samples(collection, tagger, params, progress=progress(args, "tagging"))
        return tag_samples(collection, get_tagger(model_params(args)), params, progress=progress(args, "tagging"))

    return run(job)


def _cmd_disagreements(args: argparse.Namespace) -> int:
    from plugin.jobs.disagreements import find_sample_disagreements
    from plugin.params import DisagreementParams

    def job():
        params = DisagreementParams(ram_field=args.ram_field, label_field=args.label_field, output=args.output,
                                    view_name=args.view_name, synonyms=args.synonyms, overwrite=args.overwrite)
        return find_sample_disagreements(target(args), params, progress=progress(args, "comparing"))

    return run(job)


def _cmd_export(args: argparse.Namespace) -> int:
    from plugin.jobs.export import export_finetune, export_vocabulary
    from plugin.params import ExportParams

    def job():
        params = ExportParams(label_field=args.label_field, output_dir=args.out, ram_field=args.ram_field or None,
                              copy_images=args.copy_images, on_unmapped=args.on_unmapped, synonyms=args.synonyms,
                              ls_document_root=args.ls_document_root, overwrite=args.overwrite)
        collection = target(args)
        vocab = export_vocabulary(collection._root_dataset, params, model_params(args))
        return export_finetune(collection, vocab, params, progress=progress(args, "exporting"))

    return run(job)


def _cmd_similarity(args: argparse.Namespace) -> int:
    from plugin.models.engine_cache import get_tagger
    from plugin.jobs.similarity import compute_ram_similarity
    from plugin.params import SimilarityParams

    def job():
        params = SimilarityParams(embeddings_field=args.embeddings_field, brain_key=args.brain_key,
                                  text_queries=not args.no_text_queries, overwrite=args.overwrite)
        model = model_params(args)
        return compute_ram_similarity(target(args), get_tagger(model), params, model=model,
                                      progress=progress(args, "embedding"))

    return run(job)
