"""What one annotation says about each RAM tag: the training rule for Label Studio corrections.

An annotator who saw a control answered for every label of it:

- a label mapped onto ONE RAM tag: chosen -> that tag is present (positive); not chosen ->
  absent (negative);
- a label mapped onto SEVERAL tags (`<Choice value="Pet" predicted_values="dog,cat"/>`) is
  a disjunction, "dog OR cat": not chosen -> every one of its tags is absent (negatives);
  chosen -> at least one is present, but which is unknown, so its tags are left out of the
  loss (neither positive nor negative), unless another label settles a tag;
- a tag settled both ways (a chosen one-tag label and an unchosen label that covers it)
  counts as positive: the annotator named it outright.

`reviewed_ram` (the store's known classes) is positives + negatives; what is left out is
unknown to training (`negatives="reviewed"` in ram_model.finetune). So removing a tag the
model suggested teaches the model the tag is absent, and choosing "Pet" never makes both
dog and cat positives.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Targets", "control_targets"]


@dataclass
class Targets:
    positives: set[int]
    negatives: set[int]
    unknown: set[int]  # tags of chosen disjunctions that nothing else settled

    @property
    def reviewed(self) -> set[int]:
        return self.positives | self.negatives


def control_targets(control, chosen: Iterable[str], targets: Targets | None = None) -> Targets:
    """Add one control's answer (`chosen`: its labels the annotator chose) to `targets`."""
    targets = targets or Targets(set(), set(), set())
    mapping = control.mapping
    chosen = set(chosen)
    for label in dict.fromkeys(control.spec.labels):
        tags = mapping.ram_indices[mapping.column_of(label)]
        if not tags:
            continue
        if label not in chosen:
            targets.negatives.update(tags)
        elif len(tags) == 1:
            targets.positives.add(tags[0])
        else:
            targets.unknown.update(tags)
    targets.negatives -= targets.positives
    targets.unknown -= targets.positives | targets.negatives
    return targets
