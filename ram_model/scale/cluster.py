"""Joining or starting the Ray cluster a run asks for, and importing Ray with a clear error."""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

from ..errors import ConfigError

__all__ = ["import_ray", "ray_cluster"]

_INSTALL_HINT = "pip install 'ram-annotate[ray]'  (or: pip install 'ray[data,serve]')"


def import_ray() -> Any:
    """`ray` (with Ray Data), or a one-line ConfigError naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401  - Data is a separate extra of ray
    except ImportError as e:
        raise ConfigError(f"--ray needs Ray Data ({e}); install it with {_INSTALL_HINT}") from None
    return ray


@contextmanager
def ray_cluster(target: str, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Connected to the cluster `target` names for the duration of the block.

    `local` starts a private cluster on this machine (shut down afterwards); `auto` joins the
    one `RAY_ADDRESS` or a `ray start` on this machine names; anything else is an address.
    A process already connected (a test session, a notebook) keeps its connection and is
    not shut down.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    quiet: dict[str, Any] = {"log_to_driver": True, "configure_logging": True, "logging_level": "WARNING"}
    if target == "local":
        # A fresh cluster even when RAY_ADDRESS is set or a `ray start` cluster runs here:
        # `local` means this machine, this run (address="local" never joins another).
        saved = os.environ.pop("RAY_ADDRESS", None)
        try:
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **quiet)
        finally:
            if saved is not None:
                os.environ["RAY_ADDRESS"] = saved
    else:
        try:
            ray.init(address=target, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"cannot join the Ray cluster {target!r}: {e}".splitlines()[0]) from None
    try:
        yield ray
    finally:
        ray.shutdown()
