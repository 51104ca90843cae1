"""Tensors derived from weights alone (attention masks, label queries), kept between forwards.

A cached value is used only while gradients are off and the code is not being traced by
torch.compile: training (fine-tuning in `full` mode trains the bias tables and the label
embeddings) always recomputes, so gradients flow; compiled graphs compute the values
inline, where inductor's freezing folds them into constants.

A value is stale once any tensor it came from has changed: in place (an optimizer step,
`load_state_dict`'s copy: the version counter moves) or by having its storage replaced
(`.to(...)`, `param.data = ...`: the storage pointer moves). The entry holds the source
tensors and their storages, so a freed address can never be reused by a new tensor
and be mistaken for the old one.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Hashable, Sequence

import torch
from torch import Tensor

__all__ = ["DerivedTensorCache", "caching_allowed"]


def caching_allowed() -> bool:
    """True where a value computed earlier may stand in for a fresh computation."""
    return not torch.is_grad_enabled() and not torch.compiler.is_compiling()


def _stamp(sources: Sequence[Tensor]) -> tuple | None:
    """What identifies the current contents of `sources`; None when a source can't be tracked."""
    parts = []
    for t in sources:
        if t.is_inference():  # no version counter to watch
            return None
        parts.append((t, t.untyped_storage(), t._version))
    return tuple(parts)


def _same(old: tuple, sources: Sequence[Tensor]) -> bool:
    if len(old) != len(sources):
        return False
    for (tensor, storage, version), t in zip(old, sources):
        if tensor is not t or t._version != version or t.untyped_storage().data_ptr() != storage.data_ptr():
            return False
    return True


class DerivedTensorCache:
    """A few tensors, each computed from `sources` by `build` and reused while they are unchanged.

    Keys name what is cached (device, dtype, which classes); at most `max_entries` are kept,
    the least recently used going first.
    """

    def __init__(self, max_entries: int = 4) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[tuple, Tensor]] = OrderedDict()

    def get(self, key: Hashable, sources: Sequence[Tensor], build: Callable[[], Tensor]) -> Tensor:
        if not caching_allowed():
            return build()
        hit = self._entries.get(key)
        if hit is not None and _same(hit[0], sources):
            self._entries.move_to_end(key)
            return hit[1]
        value = build()
        stamp = _stamp(sources)
        if stamp is None:
            self._entries.pop(key, None)
            return value
        self._entries[key] = (stamp, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __deepcopy__(self, memo: dict) -> "DerivedTensorCache":
        # A copied module has new weights: nothing cached for the old ones applies to it.
        return DerivedTensorCache(self.max_entries)

    def __getstate__(self) -> dict:
        return {"max_entries": self.max_entries}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_entries"])  # type: ignore[misc]
