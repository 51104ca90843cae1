"""`ram-annotate tag ... --ray`: the tag command's run with the model on a Ray cluster.

Same listing, resume rule, result rows and writer as the in-process command
(`ram_model.cli.main`, through `tag_rows`); only where the images are decoded and tagged differs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..inference.thresholds import ThresholdPolicy
from ..scale.run import RaySettings, ray_run
from .options import engine_config_from_args
from .tag_rows import RANDOM_WEIGHTS_WARNING, plan_todo, policy_digest, result_row, write_rows

__all__ = ["tag_on_ray"]


def tag_on_ray(args: argparse.Namespace, paths: list[str], out_path: Path | None, policy: ThresholdPolicy) -> int:
    with ray_run(engine_config_from_args(args), RaySettings.from_args(args)) as run:
        facts = run.facts
        if facts.random_weights:
            print(RANDOM_WEIGHTS_WARNING, file=sys.stderr)
        thresholds = policy.resolve(facts.vocab)
        todo = plan_todo(args, paths, out_path, (facts.model_version, policy_digest(thresholds, policy)))
        print(f"ray: {run.actors} actor(s), {run.gpus_per_actor:g} GPU and {run.settings.cpus_per_actor:g} CPU "
              f"each, {run.batch_size} images per batch", file=sys.stderr)
        # One write (and flush) per block as it comes back, so the file grows while the cluster works.
        row_batches = ([result_row(p, facts, policy, thresholds, args) for p in preds]
                       for preds in run.predict_batches(todo, with_embedding=args.embedding))
        return write_rows(args, out_path, row_batches, len(todo))
