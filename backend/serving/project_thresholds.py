"""Per-project thresholds: manual ones an operator sets, tuned ones fitted on the
project's corrections (the review core's `tune_thresholds`).

Precedence, most specific first: a control's `model_score_threshold` (applied in
`labelstudio.project`), then manual, then tuned, then the serving model's own (RAM's class
thresholds, or the server's `--threshold`/`--tag-threshold`). Values are kept by RAM
tag name in the store's project settings, so they survive a model change that keeps
the vocabulary.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ram_model.errors import ConfigError
from ram_model.review import reviewed_label_matrix

__all__ = ["apply_project_thresholds", "check_manual", "tuning_matrices"]


def check_manual(values: Mapping[str, Any], names: Sequence[str]) -> dict[str, float]:
    """Validate `{ram tag: threshold}`; unknown tags or values outside [0, 1] are a ConfigError."""
    known = set(names)
    out: dict[str, float] = {}
    bad = [name for name in values if name not in known]
    if bad:
        raise ConfigError(f"not RAM tags of the serving model: {', '.join(sorted(bad)[:10])}")
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
            raise ConfigError(f"threshold of {name!r} must be a number in [0, 1], got {value!r}")
        out[name] = float(value)
    return out


def apply_project_thresholds(base: np.ndarray, names: Sequence[str], settings: Mapping[str, Any]) -> np.ndarray:
    """`base` (K,) with the project's tuned, then manual, values laid over it."""
    index = {name: i for i, name in enumerate(names)}
    out = np.array(base, dtype=np.float32, copy=True)
    for layer in ("tuned", "manual"):
        for name, value in (settings.get(layer) or {}).items():
            i = index.get(name)
            if i is not None:
                out[i] = float(value)
    return out


def tuning_matrices(corrections: Sequence[Any], num_classes: int) -> tuple[np.ndarray, list[int]]:
    """Labels (N, K) for `tune_thresholds` from corrections: 1 chosen, 0 reviewed but not
    chosen, -1 not reviewed. Returns the matrix and the positions of the used corrections."""
    chosen, seen, used = [], [], []
    for pos, c in enumerate(corrections):
        reviewed = set(c.reviewed_ram)
        positives = {t["ram_index"] for t in c.final_ram_tags if isinstance(t.get("ram_index"), int)}
        if not reviewed and not positives:
            continue
        chosen.append(positives)
        seen.append(reviewed)
        used.append(pos)
    return reviewed_label_matrix(chosen, seen, num_classes), used
