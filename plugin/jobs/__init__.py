"""The plugin's jobs: what the operators and `ram-annotate fiftyone ...` run (tag, disagreements,
export, similarity) and the run records that make them resumable (`runs`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["JobResult", "MAX_REPORTED_FAILURES", "SampleJobResult"]

# Failures listed in a result (all are counted): enough to see what went wrong, small enough
# for the App's result panel and a run record.
MAX_REPORTED_FAILURES = 20


class JobResult:
    """What a job returns (a dataclass): the operator shows its fields, the CLI prints `to_dict()` as JSON."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass(kw_only=True)
class SampleJobResult(JobResult):
    """A job that visits each sample of a view once (tag, detect, embed): how many there were,
    how many an earlier run had done (skipped), and which could not be read."""

    total: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)

    def record_failure(self, sample_id: str, filepath: str, error: object) -> None:
        self.failed += 1
        if len(self.failures) < MAX_REPORTED_FAILURES:
            self.failures.append({"id": sample_id, "filepath": filepath, "error": str(error)})
