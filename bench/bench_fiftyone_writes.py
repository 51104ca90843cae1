"""Samples/s writing RAM results into FiftyOne: the plugin's bulk writes vs one `sample.save()` each.

Only the write path is timed: probabilities are precomputed (random, over the official
4,585-tag vocabulary and thresholds, shaped so ~10 tags fire per image, as RAM++ does on
photos) and turned into `fo.Classifications` by the plugin's own `fired_tags`. "bulk" is
the tag job's `write_results` (one `set_values` per chunk); "per-sample" is the pattern of
the reference plugins (`sample[field] = ...; sample.save()`). Building the label objects
costs the same in both and is timed on its own, so the table shows the write alone and
the whole path (build + write). Everything runs in one process against one embedded
MongoDB: the ratios matter, not the absolute numbers.

    .venv/bin/python bench/bench_fiftyone_writes.py [--sizes 1000 10000] [--chunks 64 512]
"""
from __future__ import annotations

# ruff: noqa: I001  (FiftyOne reads its config at import: the environment is set up first)

import argparse
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests")]

import fo_fixtures  # noqa: F401  (a private throw-away FiftyOne database; must precede fiftyone)
import numpy as np

import fiftyone as fo
from ram_model import ThresholdPolicy, TagVocabulary

from plugin.jobs.tag import fired_tags, write_results
from plugin.params import TagParams

MODEL_VERSION = "bench-ram_plus"


def _probabilities(n: int, vocab: TagVocabulary, rng: np.random.Generator) -> np.ndarray:
    """(n, K) float32 where about 10 tags per row exceed their class threshold."""
    probs = rng.uniform(0.0, 0.3, size=(n, len(vocab))).astype(np.float32)
    for row in range(n):
        hits = rng.choice(len(vocab), size=10, replace=False)
        probs[row, hits] = rng.uniform(vocab.thresholds[hits], 1.0)
    return probs


def _labels(probs: np.ndarray, vocab: TagVocabulary) -> tuple[list[fo.Classifications], float]:
    policy = ThresholdPolicy()
    start = time.perf_counter()
    labels = [fired_tags(row, vocab, policy, vocab.thresholds, model_version=MODEL_VERSION) for row in probs]
    return labels, time.perf_counter() - start


def _dataset(n: int, name: str) -> fo.Dataset:
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    dataset = fo.Dataset(name)
    dataset.add_samples([fo.Sample(filepath=f"/bench/img_{i:06d}.jpg") for i in range(n)], progress=False)
    return dataset


def _bulk(labels: list[fo.Classifications], chunk: int) -> float:
    n = len(labels)
    dataset = _dataset(n, f"bench-bulk-{n}-{chunk}")
    ids = dataset.values("id")
    params = TagParams(field="ram", chunk_size=chunk)
    start = time.perf_counter()
    for first in range(0, n, chunk):
        write_results(dataset, params, dict(zip(ids[first:first + chunk], labels[first:first + chunk])), {}, {})
    elapsed = time.perf_counter() - start
    _check(dataset, n)
    dataset.delete()
    return elapsed


def _per_sample(labels: list[fo.Classifications]) -> float:
    n = len(labels)
    dataset = _dataset(n, f"bench-save-{n}")
    start = time.perf_counter()
    for sample, label in zip(dataset.iter_samples(), labels):
        sample["ram"] = label
        sample.save()
    elapsed = time.perf_counter() - start
    _check(dataset, n)
    dataset.delete()
    return elapsed


def _check(dataset: fo.Dataset, n: int) -> None:
    """Both variants must have written every sample, with ~10 tags each."""
    assert dataset.count("ram") == n, "not every sample was written"
    per_sample = dataset.count("ram.classifications") / n
    assert 5 <= per_sample <= 20, per_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--chunks", type=int, nargs="+", default=[64, 512], help="bulk chunk sizes to try")
    args = parser.parse_args()

    vocab = TagVocabulary.from_files()
    rng = np.random.default_rng(0)
    _bulk(_labels(_probabilities(200, vocab, rng), vocab)[0], 64)  # warm-up: start mongod, first writes
    print(f"{'samples':>8} {'variant':>18} {'write s':>8} {'write/s':>8} {'ratio':>7}   "
          f"{'build+write/s':>13} {'ratio':>7}")
    for n in args.sizes:
        probs = _probabilities(n, vocab, rng)
        labels, build = _labels(probs, vocab)
        baseline = _per_sample(labels)
        rows = [("per-sample save()", baseline)]
        for chunk in args.chunks:
            rows.append((f"bulk, chunk {chunk}", _bulk(_labels(probs, vocab)[0], chunk)))
        for name, elapsed in rows:
            print(f"{n:>8} {name:>18} {elapsed:>8.2f} {n / elapsed:>8.0f} {baseline / elapsed:>6.2f}x   "
                  f"{n / (build + elapsed):>13.0f} {(build + baseline) / (build + elapsed):>6.2f}x")
        print(f"{n:>8} {'(building labels)':>18} {build:>8.2f} {n / build:>8.0f}")


if __name__ == "__main__":
    main()
