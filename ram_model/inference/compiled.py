"""`torch.compile` for inference, with eager as the fallback that never fails a run.

Inductor's freezing treats the weights as constants, folding weight-only work (the
attention masks, RAM's label queries) into the compiled graph. A graph is compiled per
input shape (`dynamic=False`): minutes at full size the first time a batch shape (or a
class count) is seen, then reused, so it pays off on long runs only. Frozen weights
mean the compiled forward must not outlive a weight change; the engine never changes
its weights.
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import Tensor, nn

from ..errors import is_out_of_memory

__all__ = ["CompiledForward"]

Forward = Callable[[Tensor, "Tensor | None"], "tuple[Tensor, Tensor]"]


class CompiledForward:
    """Calls `model.forward_with_embedding` compiled; on any compile failure, warns once and
    runs eager from then on."""

    def __init__(self, model: nn.Module) -> None:
        self._model = model
        self._compiled: Forward | None = None
        self.failed: str | None = None  # why compiling was given up, for info()
        compile_fn = getattr(torch, "compile", None)
        if compile_fn is None:
            self._give_up("this torch has no torch.compile")
            return
        try:
            # `options` patch inductor's config for this compilation only (no global state).
            self._compiled = compile_fn(model.forward_with_embedding, dynamic=False,
                                        options={"freezing": True})
        except Exception as e:  # noqa: BLE001 - unsupported platform or Python version
            self._give_up(f"{type(e).__name__}: {e}")

    @property
    def active(self) -> bool:
        return self._compiled is not None

    def __call__(self, images: Tensor, classes: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self._compiled is None:
            return self._model.forward_with_embedding(images, classes)
        try:
            return self._compiled(images, classes)
        except Exception as compiled_error:  # noqa: BLE001 - no compiler, unsupported op, ...
            if is_out_of_memory(compiled_error):
                raise
            result = self._model.forward_with_embedding(images, classes)  # a bad input raises here
            self._compiled = None
            self._give_up(f"{type(compiled_error).__name__}: {str(compiled_error).strip().splitlines()[0][:300]}"
                          if str(compiled_error).strip() else type(compiled_error).__name__)
            return result

    def _give_up(self, why: str) -> None:
        self.failed = why
        warnings.warn(f"torch.compile is not available here, running eager: {why}", RuntimeWarning, stacklevel=3)

