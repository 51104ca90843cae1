"""How well text queries by tag name find the right images: recall@k on a labelled set.

A query is a tag name; its relevant images are the samples whose label field holds that
tag. The ranking is the similarity index's own (`sort_by_similarity(tag, k)`, the path the
App takes), so the figure measures what a user gets. Chance level for a query is k / N.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import fiftyone.core.collections as foc

from plugin.fo_convert import present_labels
from plugin.jobs import JobResult

__all__ = ["RecallReport", "tag_query_recall"]


@dataclass
class RecallReport(JobResult):
    samples: int
    queries: list[str]
    recall_at_k: dict[int, float]       # mean over queries of |top-k ∩ relevant| / |relevant|
    chance_at_k: dict[int, float]       # the same for a random ranking: k / N
    per_query: dict[str, dict[int, float]] = field(default_factory=dict)


def tag_query_recall(collection: foc.SampleCollection, brain_key: str, label_field: str,
                     ks: Sequence[int] = (1, 5, 10), *, min_positives: int = 1) -> RecallReport:
    """Recall@k of text queries, one per label present on at least `min_positives` samples."""
    ids = collection.values("id")
    present = present_labels(collection, label_field)
    relevant: dict[str, set[str]] = {}
    for sample_id, names in zip(ids, present):
        for name in names or ():
            relevant.setdefault(name, set()).add(sample_id)
    queries = sorted(name for name, members in relevant.items() if len(members) >= min_positives)
    n = len(ids)
    per_query: dict[str, dict[int, float]] = {}
    for query in queries:
        ranked = collection.sort_by_similarity(query, k=max(ks), brain_key=brain_key).values("id")
        per_query[query] = {k: len(set(ranked[:k]) & relevant[query]) / len(relevant[query]) for k in ks}
    mean = {k: sum(r[k] for r in per_query.values()) / len(per_query) if per_query else 0.0 for k in ks}
    return RecallReport(n, queries, mean, {k: min(k, n) / n for k in ks}, per_query)
