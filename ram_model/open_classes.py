"""Classes outside RAM's vocabulary (open-set), scored by the same head as RAM's own tags.

A class is a set of label-embedding rows: a RAM tag's own `label_embed` rows, or the CLIP
text embeddings of its descriptions (each L2-normalised). RAM++ reweights each class's
rows per image (`ram.reweight_descriptions`); RAM uses one row per class, the normalised
mean of the description embeddings (the official open-set recipe for RAM). Classes may
have different numbers of descriptions: `ClassRows` pads them to the longest and masks
the padding out of the softmax, so no count is ever inferred by division
(recognize-anything issue #154). A view built from RAM tags' own rows computes exactly
what the closed-set engine does.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import ConfigError
from .vocab import TagVocabulary

__all__ = ["ClassRows", "OPEN_SET_THRESHOLD", "MAX_OPEN_SET_CLASSES", "choose_class_texts", "pack_rows",
           "reduce_for_ram", "rows_digest"]

# The official open-set threshold: "the threshold for unseen categories is often lower".
OPEN_SET_THRESHOLD = 0.5
# Each class is one query of the tagging head: 20,000 is about 4x RAM's own vocabulary,
# which the head runs at full size on every forward; beyond that the run should be split.
MAX_OPEN_SET_CLASSES = 20_000


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


def reduce_for_ram(embeddings: Tensor) -> Tensor:
    """RAM's one row per class: the mean of the unit description embeddings, made unit again."""
    mean = embeddings.float().mean(dim=0, keepdim=True)
    return mean / mean.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def choose_class_texts(names: Sequence[str], vocab: TagVocabulary, descriptions: Mapping[str, Sequence[str]],
                       *, open_set: bool, templates: Callable[[str], list[str]]) -> dict[str, tuple[str, ...] | None]:
    """For each name, in order: its descriptions (file), None (a RAM tag: its own rows), or templates.

    A name outside RAM's tags with no descriptions is an error unless `open_set`; a name
    given twice (also differing only in case or spacing) is an error, as is an empty list.
    """
    from .text.descriptions import name_key

    if len(names) > MAX_OPEN_SET_CLASSES:
        raise ConfigError(f"{len(names)} classes: at most {MAX_OPEN_SET_CLASSES} per engine (each is a query of "
                          "the tagging head); split the classes over several runs")
    seen: dict[str, str] = {}
    chosen: dict[str, tuple[str, ...] | None] = {}
    unknown = []
    for name in names:
        key = name_key(name)
        if key in seen:
            raise ConfigError(f"class {name!r} is given twice (also as {seen[key]!r})")
        seen[key] = name
        if name in descriptions:
            texts = tuple(descriptions[name])
            if not texts:
                raise ConfigError(f"class {name!r} has an empty description list")
            chosen[name] = texts
        elif name in vocab._index:
            chosen[name] = None
        elif open_set:
            chosen[name] = tuple(templates(name))
        else:
            unknown.append(name)
    if unknown:
        try:
            vocab.subset(unknown)
        except ConfigError as e:
            raise ConfigError(f"{e}; pass --open-set (or --descriptions FILE) to score names outside RAM's tags") \
                from None
    return chosen


def rows_digest(identity: str, texts: Mapping[str, tuple[str, ...] | None]) -> str:
    """Short hash of the text encoder and every class's descriptions (part of model_version)."""
    h = hashlib.sha256(identity.encode())
    for name, descs in texts.items():
        h.update(b"\x00" + name.encode())
        for d in descs or ():
            h.update(b"\x01" + d.encode())
    return h.hexdigest()[:8]
