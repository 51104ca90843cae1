"""Classes outside RAM's vocabulary (open-set), scored by the same head as RAM's own tags.

A class is a set of label-embedding rows (`ram_model.model.class_rows.ClassRows`): a RAM
tag's own `label_embed` rows, or the CLIP text embeddings of its descriptions (each
L2-normalised). RAM++ reweights each class's rows per image (`ram.reweight_descriptions`);
RAM uses one row per class, the normalised mean of the description embeddings (the
official open-set recipe for RAM). Here: which texts stand for each class, and the
version digest of them. A view built from RAM tags' own rows computes exactly what the
closed-set engine does.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence

from torch import Tensor

from ..errors import ConfigError
from ..model.vocab import TagVocabulary
from .descriptions import name_key

__all__ = ["OPEN_SET_THRESHOLD", "MAX_OPEN_SET_CLASSES", "choose_class_texts", "reduce_for_ram", "rows_digest"]

# The official open-set threshold: "the threshold for unseen categories is often lower".
OPEN_SET_THRESHOLD = 0.5
# Each class is one query of the tagging head: 20,000 is about 4x RAM's own vocabulary,
# which the head runs at full size on every forward; beyond that the run should be split.
MAX_OPEN_SET_CLASSES = 20_000


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
