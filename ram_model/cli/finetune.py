"""`ram-annotate finetune`: fine-tune RAM / RAM++ on reviewed labels (ram_model.finetune, docs/finetune.md)."""
from __future__ import annotations

import argparse
import json
import sys

from tqdm import tqdm

from ..finetune.config import TRAINING_OPTIONS, FinetuneConfig
from ..option import option_values
from .options import add_finetune_data_flags, add_model_options, add_option_flags, model_options_from_args
from ..weights.versions import is_random_version

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune", help="fine-tune the model on reviewed labels (official finetune JSON)",
        description="Fine-tune RAM / RAM++ on the finetune JSON our export writes. Writes OUTPUT/model.safetensors "
                    "(loads with no other flag), thresholds.txt, metrics.json (base vs new), train_log.jsonl and "
                    "card.json. Re-running the same command resumes an interrupted run.")
    add_finetune_data_flags(p, output_metavar="DIR", output_help="run folder (resumed if it holds a partial run)")
    # One flag per declared training option; `--batch-size` is the model option of that name,
    # which here is the training batch.
    add_option_flags(p.add_argument_group("training"), (s for s in TRAINING_OPTIONS if s.name != "batch_size"),
                     env=False)
    p.add_argument("--no-progress", action="store_true")
    add_model_options(p, thresholds=False)
    # `--batch-size` (a model option) is the training batch here; `--precision` allows fp32 / bf16 / auto.
    p.set_defaults(func=_cmd_finetune)


def _progress_bar(enabled: bool):  # type: ignore[no-untyped-def]
    state: dict[str, tqdm] = {}

    def update(event: dict) -> None:
        key = event["phase"] + str(event.get("epoch", event.get("model", "")))
        bar = state.get("bar")
        if state.get("key") != key:
            if bar is not None:
                bar.close()
            label = (f"epoch {event['epoch']}/{event['epochs']}" if event["phase"] == "train"
                     else f"eval {event.get('model', '')}")
            bar = state["bar"] = tqdm(total=event["steps"], desc=label, unit="batch", file=sys.stderr,
                                      disable=not enabled)
            state["key"] = key
        bar.n = event["step"]
        if "loss" in event:
            bar.set_postfix(loss=f"{event['loss']:.3f}", eta=f"{event['eta_s']:.0f}s", refresh=False)
        bar.refresh()

    def close() -> None:
        if state.get("bar") is not None:
            state["bar"].close()

    return update, close


def _cmd_finetune(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..finetune import finetune

    options = model_options_from_args(args)
    if options.precision == "fp16":
        raise ConfigError("finetune trains in fp32 or bf16 autocast; pass --precision fp32, bf16 or auto")
    if getattr(args, "compile", False):  # the flag only: RAM_ANNOTATE_COMPILE set for tagging must not block training
        raise ConfigError("--compile applies to tagging (tag, serve, fiftyone); finetune runs eager")
    training = option_values(FinetuneConfig, {**vars(args), "batch_size": options.batch_size}, given_only=True,
                             by_name=True)
    cfg = FinetuneConfig(data=tuple(args.data), image_root=args.image_root, base=options.engine_config(),
                         output=args.output, device=options.device, precision=options.precision, **training)
    update, close = _progress_bar(not args.no_progress)
    try:
        result = finetune(cfg, progress=update)
    finally:
        close()
    if cfg.base.checkpoint and is_random_version(result.card.get("model_version", "")):
        print("WARNING: the base checkpoint has random weights (a test file); its tags mean nothing.",
              file=sys.stderr)
    base, new = result.metrics["base"], result.metrics["new"]
    print(json.dumps({"output": str(result.output_dir), "checkpoint": str(result.checkpoint),
                      "model_version": result.model_version,
                      "micro_map": {"base": base["micro_map"], "new": new["micro_map"]},
                      "micro_f1": {"base": base["micro_f1"], "new": new["micro_f1"]}}, indent=2))
    return 0
