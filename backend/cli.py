"""`ram-annotate serve`: run the RAM server (Label Studio ML backend + native API).

Registered through the `ram_annotate.commands` entry point so that `ram_model`'s CLI
never imports FastAPI. Every flag also has an environment variable (see
`backend/settings.py`); a flag given on the command line wins over the environment.
"""
from __future__ import annotations

import argparse
import errno
import logging
import socket
import sys

__all__ = ["register", "settings_from_args"]

_BACKEND_FLAGS: tuple[tuple[tuple[str, ...], dict], ...] = (
    (("--host",), {"help": "interface to bind (default 127.0.0.1; use 0.0.0.0 in a container)"}),
    (("--port",), {"type": int, "help": "port (default 9090, Label Studio's convention)"}),
    (("--label-studio-url",), {"help": "Label Studio base URL [LABEL_STUDIO_URL]; default: the hostname "
                                       "Label Studio sends to /setup"}),
    (("--label-studio-api-key",), {"help": "legacy token or personal access token [LABEL_STUDIO_API_KEY]; "
                                           "prefer the environment variable"}),
    (("--model-dir",), {"help": "where the corrections database lives [MODEL_DIR]"}),
    (("--allowed-host",), {"dest": "allowed_hosts", "action": "append",
                           "help": "extra host (or host:port) task image URLs may point at; repeatable"}),
    (("--allowed-root",), {"dest": "allowed_roots", "action": "append",
                           "help": "directory whose files /v1/tag may read by path; repeatable"}),
    (("--detector",), {"help": "also load a zero-shot detector for /v1/detect and region configs: "
                                "grounding-dino-tiny, grounding-dino-base, owlv2, a repo id or random:tiny"}),
    (("--segmenter",), {"help": "also load SAM for masks (sam, sam-large, a repo id or random:tiny); needs --detector"}),
    (("--mapping-file",), {"help": "JSON/YAML {project label: [RAM tag, ...]} used for every project"}),
    (("--no-open-set-labels",), {"dest": "open_set_labels", "action": "store_const", "const": False,
                                 "help": "labels that map onto no RAM tag stay unpredicted (default: they become "
                                         "open-set classes through --text-encoder)"}),
    (("--evidence-boxes",), {"action": "store_const", "const": True,
                             "help": "fill RectangleLabels controls with RAM's evidence boxes too (coarse, from "
                                     "attention; half the tag's score, meta 'RAM evidence') "
                                     "[RAM_ANNOTATE_EVIDENCE_BOXES]"}),
    (("--max-wait-ms",), {"type": float, "help": "how long a request waits to share a batch (default 5)"}),
    (("--coalesce-max-batch",), {"type": int,
                                 "help": "most images one coalesced engine call takes (default 16)"}),
    (("--max-queue",), {"type": int, "help": "images allowed to wait before answering 503 (default 256)"}),
    (("--no-coalesce",), {"dest": "coalesce", "action": "store_const", "const": False,
                          "help": "run each request on its own (for comparison)"}),
    (("--download-timeout",), {"dest": "download_timeout_s", "type": float,
                               "help": "seconds per image download (default 10)"}),
    (("--max-download-mb",), {"type": float, "help": "size cap of one image download or upload (default 50)"}),
    (("--store",), {"help": "where corrections, jobs and the model index live: a SQLite file (default "
                            "MODEL_DIR/corrections.sqlite3) or mongodb://HOST:PORT/DB"}),
    (("--train-every",), {"type": int, "help": "start a fine-tune job every N new or updated annotations "
                                               "(default 0: only when asked)"}),
    (("--train-min-corrections",), {"type": int,
                                    "help": "corrections a project needs before --train-every fires (default 50)"}),
    (("--train-param",), {"dest": "train_params", "action": "append", "metavar": "KEY=VALUE",
                          "help": "fine-tune setting of training jobs, any option of `ram-annotate finetune` "
                                  "by its name (epochs, lr, mode, batch_size, val_split, ...) or threads; "
                                  "repeatable [RAM_ANNOTATE_TRAIN_PARAMS as JSON]"}),
    (("--allow-cpu-training",), {"action": "store_const", "const": True,
                                 "help": "let fine-tune jobs run on a server without a GPU (slow)"}),
    (("--train-min-val-images",), {"type": int, "help": "held-out images a job's version needs to be promoted "
                                                         "(default 20); below it the version is only registered"}),
    (("--max-train-workers",), {"type": int, "help": "training workers at once, all projects together; more jobs "
                                                     "wait queued (default: one per GPU, one on CPU)"}),
    (("--no-sync-label-studio-version",), {"dest": "sync_label_studio_version", "action": "store_const",
                                           "const": False, "help": "do not point the Label Studio project at "
                                           "the current model_version (nor append it to the connection's title)"}),
    (("--max-body-mb",), {"type": float, "help": "size cap of a JSON request body (default 8)"}),
    (("--max-upload-mb",), {"type": float, "help": "size cap of a whole multipart /v1/tag request (default 256)"}),
    (("--max-upload-images",), {"type": int, "help": "most images in one /v1/tag request (default 256)"}),
    (("--max-predict-tasks",), {"type": int, "help": "most tasks in one /predict request (Label Studio's Retrieve "
                                                     "predictions sends the whole selection); more is a 413 "
                                                     "(default 100000)"}),
    (("--max-predict-body-mb",), {"type": float, "help": "size cap of a /predict body (default 512)"}),
    (("--max-label-config-kb",), {"type": float, "help": "size cap of a labeling config (default 512)"}),
    (("--label-config-timeout",), {"dest": "label_config_timeout_s", "type": float,
                                   "help": "seconds allowed to parse and map a new labeling config (default 5)"}),
)
# Flags in friendly units -> the byte-valued settings they set.
_SIZE_FLAGS = {
    "max_download_mb": ("max_download_bytes", 1024 * 1024),
    "max_body_mb": ("max_body_bytes", 1024 * 1024),
    "max_predict_body_mb": ("max_predict_body_bytes", 1024 * 1024),
    "max_upload_mb": ("max_upload_bytes", 1024 * 1024),
    "max_label_config_kb": ("max_label_config_bytes", 1024),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    from ram_model.cli.options import add_model_options

    parser = subparsers.add_parser(
        "serve",
        help="run the RAM server for Label Studio (ML backend) and the FiftyOne plugin",
        description="Load RAM once and serve Label Studio's ML-backend protocol and the native /v1 API.",
    )
    add_model_options(parser)
    for flags, kwargs in _BACKEND_FLAGS:
        parser.add_argument(*flags, **kwargs)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    from .serving.ray_serve import add_serve_ray_options  # imports no Ray

    add_serve_ray_options(parser)
    # Unset flags must not shadow environment variables, so no flag has a default here.
    parser.set_defaults(
        **{a.dest: None for a in parser._actions if a.dest not in ("help", "log_level")},
        func=_serve,
    )


def settings_from_args(args: argparse.Namespace):
    """Settings from the environment, overridden by the flags actually given."""
    from .settings import Settings

    from ram_model.inference.options import MODEL_OPTION_NAMES

    names = set(Settings.model_fields) | set(MODEL_OPTION_NAMES)
    given = {k: v for k, v in vars(args).items() if v is not None and k in names}
    for flag, (setting, unit) in _SIZE_FLAGS.items():
        if getattr(args, flag, None) is not None:
            given[setting] = int(getattr(args, flag) * unit)
    return Settings(**given)


def _port_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on host:port, found by binding once, as uvicorn will."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use (another server?); choose one with --port"
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def _check_before_loading(settings) -> str | None:
    """The mistakes that would otherwise surface only after the model has loaded, or as a
    traceback: a device that is not there, a checkpoint that cannot be found, a busy port."""
    from ram_model.inference.engine import resolve_device
    from ram_model.errors import RamModelError
    from ram_model.weights.hub import resolve_checkpoint

    config = settings.engine_config()
    try:
        resolve_device(config.device)
        resolve_checkpoint(config.checkpoint, cache_dir=config.cache_dir)
    except RamModelError as exc:
        return str(exc)
    return _port_problem(settings.host, settings.port)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from .app import create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        print(f"error: invalid server settings:\n{exc}", file=sys.stderr)
        return 2
    problem = _check_before_loading(settings)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if settings.host not in ("127.0.0.1", "localhost", "::1") and not settings.basic_auth:
        logging.getLogger("backend.cli").warning(
            "listening on %s without BASIC_AUTH_USER/BASIC_AUTH_PASS: anyone who can reach it can use it",
            settings.host,
        )
    if args.ray:  # the same app as Ray Serve's ingress, the model in replicas (backend/serving/ray_serve.py)
        from .serving.ray_serve import run_serve, serve_options_from_args

        try:
            options = serve_options_from_args(args)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return run_serve(settings, options, args.ray)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=args.log_level)
    return 0
