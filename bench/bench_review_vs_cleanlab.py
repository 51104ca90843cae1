"""Benchmark: our label-error detection against cleanlab's multi-label defaults, in one run.

Two benchmarks built the way cleanlab's multi-label paper builds its synthetic ones
(Thyagarajan et al., "Identifying Incorrect Annotations in Multi-Label Classification
Data", arXiv 2211.13895, and its benchmark repository): scikit-learn's
``make_multilabel_classification`` (``length=500``, unlabelled samples allowed), rows
scaled to unit norm, and out-of-fold probabilities from one logistic regression per class
(5 folds) trained on the *noisy* labels, as a user would.

* ``dense``: the paper's "small" shape: 5,000 samples, 3 features, 4 classes, 2 labels on
  average (half the cells are positive).
* ``sparse``: many classes, few per sample: 6,000 samples, 20 features, 50 classes,
  3 labels on average (the paper's "large" shape has 30,000 samples and 5 labels; smaller
  here so that a run takes minutes on 2 cores).

Noise: 12 % of samples get 1 or 2 flipped tags, each flip dropping a present tag or adding
an absent one with equal chance (the paper flips per-class with noise matrices; a fixed
per-sample share makes the "sample has an error" target explicit).

Both methods see the same labels and probabilities. Printed per benchmark, mean +- sd over
seeds:

* AUROC / AUPRC of the sample ranking against "this sample has a wrong tag"
  (ours: ``find_disagreements(...).sample_scores``; cleanlab: ``-get_label_quality_scores``);
* cell AUPRC of the per-tag scores against the flipped cells
  (ours: ``tag_scores``; cleanlab: ``-get_label_quality_scores_per_class``);
* flag precision / recall / F1, per sample (ours: a sample with any flag; cleanlab:
  ``find_label_issues``) and per tag (cleanlab: ``find_multilabel_issues_per_class``);
* for context, ours without per-class calibration, the previous default (worst
  threshold-centred tag, flags where the model decides the other way) and our noise-rate
  estimate against the true rate.

cleanlab and scikit-learn are benchmark-only dependencies. Run:

    .venv/bin/python bench/bench_review_vs_cleanlab.py             # 3 seeds per benchmark
    .venv/bin/python bench/bench_review_vs_cleanlab.py --seeds 5
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cleanlab.multilabel_classification.filter import (  # noqa: E402
    find_label_issues,
    find_multilabel_issues_per_class,
)
from cleanlab.multilabel_classification.rank import (  # noqa: E402
    get_label_quality_scores,
    get_label_quality_scores_per_class,
)
from sklearn.datasets import make_multilabel_classification  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: E402
from sklearn.model_selection import KFold  # noqa: E402

from ram_model.review import find_disagreements, tag_error_scores  # noqa: E402
from timing import best_time  # noqa: E402

BENCHMARKS: dict[str, dict[str, int]] = {
    "dense": dict(n_samples=5000, n_features=3, n_classes=4, n_labels=2),
    "sparse": dict(n_samples=6000, n_features=20, n_classes=50, n_labels=3),
}
ERROR_RATE = 0.12
DROP_SHARE = 0.5


@dataclass(frozen=True)
class NoisyDataset:
    noisy: np.ndarray  # (N, K) bool labels given to both methods
    clean: np.ndarray  # (N, K) bool ground truth
    probs: np.ndarray  # (N, K) out-of-fold probabilities

    @property
    def wrong(self) -> np.ndarray:
        return self.noisy != self.clean

    @property
    def sample_is_error(self) -> np.ndarray:
        return self.wrong.any(axis=1)


def make_dataset(benchmark: str, seed: int) -> NoisyDataset:
    """Reproducible noisy multi-label data with out-of-fold probabilities."""
    features, clean = make_multilabel_classification(
        **BENCHMARKS[benchmark], length=500, allow_unlabeled=True, random_state=seed
    )
    features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    clean = clean.astype(bool)
    noisy = clean.copy()
    rng = np.random.default_rng(seed)
    for row in rng.choice(len(clean), int(ERROR_RATE * len(clean)), replace=False):
        flipped: set[int] = set()
        for _ in range(rng.integers(1, 3)):  # one or two flipped tags
            present = [k for k in np.flatnonzero(clean[row]) if k not in flipped]
            absent = [k for k in np.flatnonzero(~clean[row]) if k not in flipped]
            column = rng.choice(present) if present and (rng.random() < DROP_SHARE or not absent) else rng.choice(absent)
            noisy[row, column] = ~noisy[row, column]
            flipped.add(int(column))
    return NoisyDataset(noisy, clean, out_of_fold_probs(features, noisy, seed))


def out_of_fold_probs(features: np.ndarray, labels: np.ndarray, seed: int, folds: int = 5) -> np.ndarray:
    """One logistic regression per class, each sample scored by the fold that did not see it."""
    probs = np.zeros(labels.shape)
    for train, test in KFold(folds, shuffle=True, random_state=seed).split(features):
        for k in range(labels.shape[1]):
            y = labels[train, k]
            if y.all() or not y.any():
                probs[test, k] = y.mean()
                continue
            probs[test, k] = LogisticRegression(max_iter=1000).fit(features[train], y).predict_proba(features[test])[:, 1]
    return probs


def precision_recall_f1(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    hits = int((flagged & truth).sum())
    precision = hits / max(int(flagged.sum()), 1)
    recall = hits / max(int(truth.sum()), 1)
    return precision, recall, 2 * precision * recall / max(precision + recall, 1e-12)


def score_method(data: NoisyDataset, sample_scores: np.ndarray, cell_scores: np.ndarray,
                 sample_flags: np.ndarray, cell_flags: np.ndarray | None) -> dict[str, float]:
    row = {
        "AUROC": roc_auc_score(data.sample_is_error, sample_scores),
        "AUPRC": average_precision_score(data.sample_is_error, sample_scores),
        "cell AUPRC": average_precision_score(data.wrong.ravel(), np.nan_to_num(cell_scores).ravel()),
    }
    row["flag P"], row["flag R"], row["flag F1"] = precision_recall_f1(sample_flags, data.sample_is_error)
    if cell_flags is not None:
        row["cell P"], row["cell R"], row["cell F1"] = precision_recall_f1(cell_flags, data.wrong)
    return row


def as_cells(per_class: object, shape: tuple[int, int]) -> np.ndarray:
    """cleanlab's per-class results as an (N, K) array (it returns per-class lists or (N, K))."""
    array = np.asarray(per_class)
    return array if array.shape == shape else np.stack(list(per_class), axis=1)  # type: ignore[call-overload]


def evaluate(data: NoisyDataset) -> dict[str, dict[str, float]]:
    index_lists = [np.flatnonzero(row).tolist() for row in data.noisy]
    ours = find_disagreements(data.noisy, data.probs)
    ours_cells = ours.tag_scores > ours.flag_at
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cleanlab warns about classes it finds no issue in
        cl_quality = get_label_quality_scores(index_lists, data.probs)
        cl_per_class = as_cells(get_label_quality_scores_per_class(index_lists, data.probs), data.noisy.shape)
        cl_issues = find_label_issues(index_lists, data.probs)
        cl_cells = as_cells(find_multilabel_issues_per_class(index_lists, data.probs), data.noisy.shape)
        cl_time = best_time(lambda: (get_label_quality_scores(index_lists, data.probs),
                                     find_label_issues(index_lists, data.probs)))
    uncalibrated = find_disagreements(data.noisy, data.probs, calibrate=False)
    uncalibrated_cells = uncalibrated.tag_scores > uncalibrated.flag_at
    previous = tag_error_scores(data.noisy, data.probs)  # the old default: worst centred tag, flag at 0.5
    return {
        "ours": {
            **score_method(data, ours.sample_scores, ours.tag_scores, ours_cells.any(axis=1), ours_cells),
            "noise rate / true": ours.noise_rate / data.sample_is_error.mean(),
            "seconds": best_time(lambda: find_disagreements(data.noisy, data.probs)),
        },
        "cleanlab": {
            **score_method(data, -cl_quality, -cl_per_class, cl_issues, cl_cells),
            "seconds": cl_time,
        },
        "ours, calibrate=False": score_method(data, uncalibrated.sample_scores, uncalibrated.tag_scores,
                                              uncalibrated_cells.any(axis=1), uncalibrated_cells),
        "previous default": score_method(data, previous.max(axis=1), previous, (previous > 0.5).any(axis=1),
                                         previous > 0.5),
    }


COLUMNS = ("AUROC", "AUPRC", "cell AUPRC", "flag P", "flag R", "flag F1", "cell P", "cell R", "cell F1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="datasets per benchmark (seeds 0..n-1)")
    parser.add_argument("--benchmarks", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    args = parser.parse_args(argv)

    print(f"label-error detection, {ERROR_RATE:.0%} of samples with 1-2 flipped tags (drop/add 50/50); "
          "out-of-fold one-vs-rest logistic regression; ours = find_disagreements defaults, "
          "cleanlab = get_label_quality_scores / find_label_issues / *_per_class defaults")
    print("flag P/R/F1: per sample (has any flag vs has an error); cell P/R/F1: per tag. mean +- sd over seeds")
    for benchmark in args.benchmarks:
        runs = []
        for seed in range(args.seeds):
            started = time.perf_counter()
            runs.append(evaluate(make_dataset(benchmark, seed)))
            print(f"  [{benchmark} seed {seed}: {time.perf_counter() - started:.0f} s]", file=sys.stderr, flush=True)
        shape = BENCHMARKS[benchmark]
        print(f"\n{benchmark}: {shape['n_samples']} samples x {shape['n_classes']} classes, "
              f"{shape['n_labels']} labels per sample on average, {args.seeds} seeds")
        header = f"{'method':<22}" + "".join(f"{c:>15}" for c in COLUMNS)
        print(header)
        print("-" * len(header))
        for method in ("ours", "cleanlab", "ours, calibrate=False", "previous default"):
            cells = []
            for column in COLUMNS:
                values = [run[method][column] for run in runs if column in run[method]]
                cells.append(f"{np.mean(values):.3f} +- {np.std(values):.3f}" if values else "-")
            print(f"{method:<22}" + "".join(f"{c:>15}" for c in cells))
        ratios = [f"{c} {np.mean([r['ours'][c] for r in runs]) / np.mean([r['cleanlab'][c] for r in runs]):.2f}"
                  for c in COLUMNS]
        print("ours / cleanlab: " + ", ".join(ratios))
        wins = {c: sum(r["ours"][c] > r["cleanlab"][c] for r in runs) for c in ("AUROC", "AUPRC", "flag F1")}
        print("seeds where ours beats cleanlab: " + ", ".join(f"{c} {n}/{len(runs)}" for c, n in wins.items()))
        rate = [r["ours"]["noise rate / true"] for r in runs]
        print(f"estimated noise rate / true rate: {np.mean(rate):.2f} +- {np.std(rate):.2f}")
        ours_s, cl_s = (np.mean([r[m]["seconds"] for r in runs]) for m in ("ours", "cleanlab"))
        print(f"scoring time, best of 3: ours {ours_s * 1e3:.0f} ms, cleanlab {cl_s * 1e3:.0f} ms "
              f"(ratio {ours_s / cl_s:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
