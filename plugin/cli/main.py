"""`ram-annotate fiftyone tag|disagreements|export|similarity`: the operators' jobs without the App.

The sub-commands parse flags into the same params objects the operators build and call
the same job functions, so a scripted run and an App run write identical results.
FiftyOne is imported only when a sub-command runs, to keep `ram-annotate --help` fast.
"""
from __future__ import annotations

import argparse

from plugin.cli.common import add_job, model_params, progress, run, target
from plugin.params import DisagreementParams, ExportParams, SimilarityParams, TagParams
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

    add_review_commands(jobs)


def _add_tag(jobs: argparse._SubParsersAction) -> None:
    p = add_job(jobs, "tag", "write RAM tags into a Classifications field (resumable)", TagParams, _cmd_tag,
                model=True, server=True)
    add_ray_options(p)


def _add_disagreements(jobs: argparse._SubParsersAction) -> None:
    add_job(jobs, "disagreements", "flag likely missing/wrong labels and save a ranked view", DisagreementParams,
            _cmd_disagreements)


def _add_export(jobs: argparse._SubParsersAction) -> None:
    add_job(jobs, "export", "write RAM finetune JSON + Label Studio tasks from a label field", ExportParams,
            _cmd_export, model=True, thresholds=False, server=True, aliases={"output_dir": "--out"})


def _add_similarity(jobs: argparse._SubParsersAction) -> None:
    add_job(jobs, "similarity", "store RAM embeddings and build a similarity index (sort by image or tag)",
            SimilarityParams, _cmd_similarity, model=True, thresholds=False, server=True)


def _cmd_tag(args: argparse.Namespace) -> int:
    from plugin.errors import PluginInputError
    from plugin.models.engine_cache import get_tagger
    from plugin.jobs.tag import tag_samples

    def job():
        params = TagParams.from_mapping(vars(args))
        collection = target(args)
        if args.ray:  # the model on a Ray cluster (ram_model.scale), results written here in bulk
            if params.evidence:  # before a cluster starts: the maps need the model's gradients here
                raise PluginInputError("--evidence runs in this process only; drop --ray (or --evidence)")
            from plugin.ray_tagger import ray_tagger
            from ram_model.scale.run import RaySettings

            with ray_tagger(model_params(args), RaySettings.from_args(args)) as tagger:
                return tag_samples(collection, tagger, params, progress=progress(args, "tagging"))
        return tag_samples(collection, get_tagger(model_params(args)), params, progress=progress(args, "tagging"))

    return run(job)


def _cmd_disagreements(args: argparse.Namespace) -> int:
    from plugin.jobs.disagreements import find_sample_disagreements

    def job():
        params = DisagreementParams.from_mapping(vars(args))
        return find_sample_disagreements(target(args), params, progress=progress(args, "comparing"))

    return run(job)


def _cmd_export(args: argparse.Namespace) -> int:
    from plugin.jobs.export import export_finetune, export_vocabulary

    def job():
        params = ExportParams.from_mapping(vars(args))
        collection = target(args)
        vocab = export_vocabulary(collection._root_dataset, params, model_params(args))
        return export_finetune(collection, vocab, params, progress=progress(args, "exporting"))

    return run(job)


def _cmd_similarity(args: argparse.Namespace) -> int:
    from plugin.models.engine_cache import get_tagger
    from plugin.jobs.similarity import compute_ram_similarity

    def job():
        params = SimilarityParams.from_mapping(vars(args))
        model = model_params(args)
        return compute_ram_similarity(target(args), get_tagger(model), params, model=model,
                                      progress=progress(args, "embedding"))

    return run(job)
