"""`ram-annotate models list|show|register|promote|rollback`: the fine-tuned model registry (ram_model.weights.registry)."""
from __future__ import annotations

import argparse
import json

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("models", help="fine-tuned model registry: list, show, register, promote, rollback",
                           description="Versions of fine-tuned models under ROOT/<name>/<version>/ and the active one. "
                                       "Engines load registry://ROOT/<name> (active) or registry://ROOT/<name>@<version>.")
    actions = group.add_subparsers(dest="models_command", required=True)

    def action(name: str, help_text: str):  # type: ignore[no-untyped-def]
        p = actions.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--root", required=True, metavar="DIR", help="registry folder")
        return p

    p = action("list", "names and versions (the active one marked)")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.set_defaults(func=_cmd_list)
    p = action("show", "one version's metrics summary and card (default: the active version)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", nargs="?", metavar="VERSION")
    p.set_defaults(func=_cmd_show)
    p = action("register", "copy a finished `ram-annotate finetune` output folder in as a version")
    p.add_argument("name", metavar="NAME")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.set_defaults(func=_cmd_register)
    p = action("promote", "make a version active if its validation micro-F1 beats the active one's")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION")
    p.add_argument("--force", action="store_true", help="promote even if it does not beat the active version")
    p.set_defaults(func=_cmd_promote)
    p = action("rollback", "re-activate the previously active version")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=_cmd_rollback)


def _print(data: object) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _cmd_list(args: argparse.Namespace) -> int:
    from ..weights.registry import ModelRegistry

    reg = ModelRegistry(args.root)
    out = {}
    for name in [args.name] if args.name else reg.names():
        active = reg.active(name)
        out[name] = [{**v.summary(), "active": active is not None and v.version == active.version}
                     for v in reg.versions(name)]
    _print(out)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from ..weights.registry import ModelRegistry, RegistryError

    reg = ModelRegistry(args.root)
    mv = reg.get(args.name, args.version) if args.version else reg.active(args.name)
    if mv is None:
        raise RegistryError(f"model {args.name!r} has no active version; name a VERSION")
    metrics = {side: {k: v for k, v in (mv.metrics.get(side) or {}).items() if k != "per_class"}
               for side in ("base", "new")}
    _print({**mv.summary(), "uri": f"registry://{args.root}/{mv.name}@{mv.version}", "metrics": metrics,
            "card": mv.card, "history": reg.history(args.name)["events"][-10:]})
    return 0


def _cmd_register(args: argparse.Namespace) -> int:
    from ..weights.registry import ModelRegistry

    mv = ModelRegistry(args.root).register(args.name, args.run_dir)
    _print({**mv.summary(), "uri": f"registry://{args.root}/{mv.name}@{mv.version}"})
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    from ..weights.registry import ModelRegistry

    res = ModelRegistry(args.root).promote(args.name, args.version, force=args.force)
    _print({"promoted": res.promoted, "reason": res.reason, "candidate": res.candidate.version,
            "previous": res.previous.version if res.previous else None,
            "candidate_score": res.candidate_score, "active_score": res.active_score})
    return 0 if res.promoted else 1


def _cmd_rollback(args: argparse.Namespace) -> int:
    from ..weights.registry import ModelRegistry

    mv = ModelRegistry(args.root).rollback(args.name)
    _print({"active": mv.version, "micro_f1": mv.score})
    return 0
