"""Label-embedding rows the tagging head can take in place of RAM's own (issue 20).

A class is a set of label-embedding rows: a RAM tag's own `label_embed` rows, or the CLIP
text embeddings of its descriptions (`ram_model.text.open_classes` chooses and encodes
them). RAM++ reweights each class's rows per image (`ram.reweight_descriptions`). Classes
may have different numbers of rows: `ClassRows` pads them to the longest and masks the
padding out of the softmax, so no count is ever inferred by division
(recognize-anything issue #154). It lives beside the model because `RAMTagger` takes it
as `classes`; the model needs nothing else of the open-set machinery.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = ["ClassRows", "pack_rows"]


@dataclass(frozen=True, eq=False)
class ClassRows:
    """Label-embedding rows of `count` classes: [count * D, 512], class c in rows c*D .. c*D+D-1.

    `mask` [count, D] marks real rows (False: padding); None when every class fills all D.
    Passed as `classes` to `RAMTagger.forward_with_embedding`.
    """

    rows: Tensor
    mask: Tensor | None
    count: int

    @property
    def per_class(self) -> int:
        return self.rows.shape[0] // self.count

    def to(self, device: torch.device, dtype: torch.dtype) -> "ClassRows":
        mask = None if self.mask is None else self.mask.to(device)
        return ClassRows(self.rows.to(device=device, dtype=dtype), mask, self.count)

    def class_means(self) -> Tensor:
        """[count, 512] float32: the mean of each class's real rows (what stands for the class in text search)."""
        rows = self.rows.float().view(self.count, self.per_class, -1)
        if self.mask is None:
            return rows.mean(dim=1)
        weights = self.mask.to(rows.dtype).unsqueeze(-1)
        return (rows * weights).sum(dim=1) / weights.sum(dim=1)


def pack_rows(groups: Sequence[Tensor]) -> ClassRows:
    """One [n_i, 512] tensor per class (n_i >= 1, any mix) -> padded `ClassRows`."""
    if not groups:
        raise ConfigError("no classes to score")
    counts = [int(g.shape[0]) for g in groups]
    if min(counts) < 1:
        raise ConfigError("every class needs at least one label-embedding row")
    width = max(counts)
    dim = groups[0].shape[1]
    with torch.no_grad():  # outside inference mode, so the derived-query cache can watch these tensors
        if all(c == width for c in counts):  # cat writes a new (normal, not inference-mode) tensor
            return ClassRows(torch.cat([g.detach() for g in groups]), None, len(groups))
        rows = torch.zeros(len(groups), width, dim, dtype=groups[0].dtype)
        mask = torch.zeros(len(groups), width, dtype=torch.bool)
        for i, g in enumerate(groups):
            rows[i, :counts[i]] = g.detach()
            mask[i, :counts[i]] = True
    return ClassRows(rows.view(len(groups) * width, dim), mask, len(groups))
