"""The plugin's jobs: what the operators and `ram-annotate fiftyone ...` run (tag, disagreements,
export, similarity) and the run records that make them resumable (`runs`)."""
from __future__ import annotations

from dataclasses import asdict

__all__ = ["JobResult"]


class JobResult:
    """What a job returns (a dataclass): the operator shows its fields, the CLI prints `to_dict()` as JSON."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)  # type: ignore[call-overload]
