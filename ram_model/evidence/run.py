"""The engine's evidence pass: one Swin forward, then tags chosen, then one head backward per batch.

Plain tagging (`TaggingEngine._forward`) never comes here; with evidence asked for, the image
tokens are computed once and serve both the probabilities (which decide the fired tags) and
the maps, so the extra cost is the head's forward and backward over the chosen tags only.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from ..errors import is_out_of_memory
from ..inference.precision import autocast_context
from ..model.ram import RAMTagger
from ..inference.thresholds import fired_indices
from ..model.vocab import TagVocabulary
from .boxes import box_from_map
from .maps import evidence_maps, token_grid
from .result import TagEvidence

if TYPE_CHECKING:
    from .request import EvidenceRequest

__all__ = ["forward_with_evidence", "named_positions"]


def named_positions(vocab: TagVocabulary, names: Sequence[str]) -> list[int]:
    """Vocabulary positions of `names`; a ConfigError naming every unknown one (with close matches)."""
    if not names:
        return []
    vocab.subset(list(names))  # raises for unknown names, all at once
    return [vocab.index_of(n) for n in names]


def _chosen(request: EvidenceRequest, probs: np.ndarray, vocab: TagVocabulary) -> list[list[int]]:
    if request.tags is not None:
        fixed = named_positions(vocab, request.tags)
        return [list(fixed) for _ in range(probs.shape[0])]
    if request.select is not None:
        return [[int(i) for i in request.select(row)] for row in probs]
    return [fired_indices(row, vocab.thresholds).tolist() for row in probs]


def _evidence_batch(model: RAMTagger, x: torch.Tensor, *, class_index: torch.Tensor | None, vocab: TagVocabulary,
                    request: EvidenceRequest, autocast_dtype: torch.dtype | None,
                    ) -> tuple[torch.Tensor, torch.Tensor, list[list[TagEvidence]]]:
    device = x.device
    with autocast_context(device, autocast_dtype):
        with torch.no_grad():
            tokens = model.image_proj(model.visual_encoder(x))
            logits = model.fc(model.tagging_head(model.label_queries(tokens, class_index), tokens)).squeeze(-1)
        probs = torch.sigmoid(logits.float()).cpu()
        chosen = _chosen(request, probs.numpy(), vocab)
        width = max((len(c) for c in chosen), default=0)
        out: list[list[TagEvidence]] = [[] for _ in chosen]
        if width == 0:
            return probs, tokens[:, 0].float().cpu(), out
        padded = torch.zeros((len(chosen), width), dtype=torch.int64)
        valid = torch.zeros((len(chosen), width), dtype=torch.bool)
        for b, positions in enumerate(chosen):
            padded[b, : len(positions)] = torch.as_tensor(positions, dtype=torch.int64)
            valid[b, : len(positions)] = True
        padded, valid = padded.to(device), valid.to(device)
        model_classes = padded if class_index is None else class_index[padded]
        maps, _ = evidence_maps(model, tokens, model_classes, valid, token_grid(model.visual_encoder.cfg))
    maps_np = maps.cpu().numpy()
    for b, positions in enumerate(chosen):
        for m, pos in enumerate(positions):
            grid = maps_np[b, m]
            out[b].append(TagEvidence(vocab.names[pos], pos, float(probs[b, pos]), grid, box_from_map(grid)))
    return probs, tokens[:, 0].float().cpu(), out


def forward_with_evidence(model: RAMTagger, batch: torch.Tensor, *, device: torch.device,
                          class_index: torch.Tensor | None, vocab: TagVocabulary, request: EvidenceRequest,
                          autocast_dtype: torch.dtype | None,
                          ) -> tuple[torch.Tensor, torch.Tensor, list[list[TagEvidence]]]:
    """(probabilities [B, K], pooled embeddings [B, 512], evidence per image) on the CPU.

    On CUDA out-of-memory the batch is halved and retried, as plain tagging does.
    """
    try:
        return _evidence_batch(model, batch.to(device, non_blocking=True), class_index=class_index, vocab=vocab,
                               request=request, autocast_dtype=autocast_dtype)
    except RuntimeError as e:
        if not is_out_of_memory(e) or batch.shape[0] == 1:
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        half = batch.shape[0] // 2
        kwargs = dict(device=device, class_index=class_index, vocab=vocab, request=request,
                      autocast_dtype=autocast_dtype)
        first = forward_with_evidence(model, batch[:half], **kwargs)
        second = forward_with_evidence(model, batch[half:], **kwargs)
        return torch.cat([first[0], second[0]]), torch.cat([first[1], second[1]]), first[2] + second[2]

