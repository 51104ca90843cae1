"""RAM and RAM++ as one module: images in, one logit per class out.

Huang et al., "Recognize Anything: A Strong Image Tagging Model" (2023) and
"Open-Set Image Tagging with Multi-Grained Text Supervision" (RAM++, 2023); official code
and weights: github.com/xinyu1205/recognize-anything (Apache-2.0). No thresholds and no
strings here: those belong to the vocabulary and the engine.
"""
from __future__ import annotations

import contextlib
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .class_rows import ClassRows
from .config import DESCRIPTIONS_PER_CLASS, LABEL_EMBED_DIM, HeadConfig, SwinConfig
from .derived_cache import DerivedTensorCache
from .swin import SwinTransformer
from .tagging_head import TaggingHead

__all__ = ["RAMTagger", "reweight_descriptions"]


def reweight_descriptions(pooled: Tensor, label_embed: Tensor, scale_log: Tensor, num_classes: int,
                          mask: Tensor | None = None) -> Tensor:
    """RAM++'s per-image class embedding: a softmax-weighted mix of each class's descriptions.

    pooled [B, 512] (projected token 0), label_embed [K * D, 512] (row c*D + d),
    scale_log: the learned log temperature; mask [K, D] (False: a padding row, never
    weighted) when classes have different numbers of descriptions. Returns [B, K, 512].
    """
    per_class = label_embed.shape[0] // num_classes
    if per_class * num_classes != label_embed.shape[0]:
        raise ValueError(f"{label_embed.shape[0]} label rows do not split into {num_classes} classes")
    direction = pooled / pooled.norm(dim=-1, keepdim=True)
    logits = (scale_log.exp() * direction @ label_embed.t()).view(-1, num_classes, per_class)  # B, K, D
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    weights = logits.softmax(dim=-1)
    return torch.einsum("bkd,kde->bke", weights, label_embed.view(num_classes, per_class, -1))


def _weights_autocast(weight: Tensor) -> contextlib.AbstractContextManager:
    """Autocast to `weight`'s dtype when it is low precision and no autocast is active.

    The engine casts matrix weights to bf16 / fp16 once for inference
    (`ram_model.inference.precision`); such a model only works under autocast. This lets
    code that calls it directly, outside the engine, get the engine's numbers instead of a
    dtype mismatch error.
    """
    device_type = weight.device.type
    if weight.dtype == torch.float32 or torch.is_autocast_enabled(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=weight.dtype)


class RAMTagger(nn.Module):
    """`forward(images) -> logits [B, K]`; `forward_with_embedding` also returns the pooled embedding."""

    def __init__(self, swin: SwinConfig, head: HeadConfig, num_classes: int,
                 variant: Literal["ram", "ram_plus"]) -> None:
        super().__init__()
        self.variant = variant
        self.num_classes = num_classes
        self.visual_encoder = SwinTransformer(swin)
        self.image_proj = nn.Linear(swin.vision_width, LABEL_EMBED_DIM)
        rows = num_classes * (DESCRIPTIONS_PER_CLASS if variant == "ram_plus" else 1)
        self.label_embed = nn.Parameter(torch.zeros(rows, LABEL_EMBED_DIM))
        if variant == "ram_plus":
            self.reweight_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        # The official code skips the projection when the head is already 512 wide.
        self.wordvec_proj: nn.Module = (
            nn.Linear(LABEL_EMBED_DIM, head.hidden_size) if head.hidden_size != LABEL_EMBED_DIM else nn.Identity()
        )
        self.tagging_head = TaggingHead(head, encoder_width=LABEL_EMBED_DIM)
        self.fc = nn.Linear(head.hidden_size, 1)
        self._query_cache = DerivedTensorCache(max_entries=8)

    def class_embeddings(self, classes: Tensor | None = None) -> Tensor:
        """`label_embed` rows of `classes` (class indices, in the order given), or all rows.

        RAM has one row per class; RAM++ has `DESCRIPTIONS_PER_CLASS` consecutive rows per
        class, which stay together so the per-class softmax sees exactly the same rows.
        """
        if classes is None:
            return self.label_embed
        per_class = self.label_embed.shape[0] // self.num_classes
        if per_class == 1:
            return self.label_embed.index_select(0, classes)
        grouped = self.label_embed.view(self.num_classes, per_class, -1)
        return grouped.index_select(0, classes).reshape(-1, self.label_embed.shape[1])

    def label_queries(self, image_tokens: Tensor, classes: "Tensor | ClassRows | None" = None) -> Tensor:
        """[B, K', hidden] queries: fixed per class (RAM) or reweighted per image (RAM++).

        K' is the number of `classes` (all K when None). The tagging head has no attention
        between class queries, so leaving classes out changes nothing for the others.
        `ClassRows` brings its own label-embedding rows (open-set classes, `ram_model.text.open_classes`).
        """
        if isinstance(classes, ClassRows):
            if self.variant == "ram_plus":
                embed = reweight_descriptions(image_tokens[:, 0], classes.rows, self.reweight_scale, classes.count,
                                              classes.mask)
                return F.relu(self.wordvec_proj(embed))
            queries = self._fixed_queries(classes)
            return queries.unsqueeze(0).expand(image_tokens.shape[0], -1, -1)
        if self.variant == "ram_plus":
            count = self.num_classes if classes is None else int(classes.numel())
            embed = reweight_descriptions(image_tokens[:, 0], self.class_embeddings(classes), self.reweight_scale, count)
            return F.relu(self.wordvec_proj(embed))
        queries = self._fixed_queries(classes)
        return queries.unsqueeze(0).expand(image_tokens.shape[0], -1, -1)

    def _fixed_queries(self, classes: "Tensor | ClassRows | None") -> Tensor:
        """RAM's [K', hidden] queries. They depend on the weights only, so they are computed
        once per (classes, device, autocast dtype) and reused while gradients are off and
        the weights unchanged (`ram_model.model.derived_cache`)."""
        own_rows = isinstance(classes, ClassRows)
        sources = [classes.rows if own_rows else self.label_embed, *self.wordvec_proj.parameters()]
        if classes is not None and not own_rows:
            sources.append(classes)  # held by the entry, so its id stays unique while cached
        device = self.label_embed.device
        autocast = torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else None
        key = (device, autocast, None if classes is None else id(classes.rows if own_rows else classes))
        rows = (lambda: classes.rows) if own_rows else (lambda: self.class_embeddings(classes))
        return self._query_cache.get(key, sources, lambda: F.relu(self.wordvec_proj(rows())))

    def forward_with_embedding(self, images: Tensor, classes: "Tensor | ClassRows | None" = None
                               ) -> tuple[Tensor, Tensor]:
        """images [B, 3, S, S] normalised -> (logits [B, K'], pooled image embedding [B, 512]).

        `classes`: a 1-D int64 tensor of class indices (on the model's device) to compute
        only those classes, in that order; `ClassRows` for classes with their own rows;
        None computes all K.
        """
        with _weights_autocast(self.image_proj.weight):  # weights cast to bf16/fp16 need autocast
            tokens = self.image_proj(self.visual_encoder(images))
            features = self.tagging_head(self.label_queries(tokens, classes), tokens)
            return self.fc(features).squeeze(-1), tokens[:, 0]

    def forward(self, images: Tensor, classes: "Tensor | ClassRows | None" = None) -> Tensor:
        return self.forward_with_embedding(images, classes)[0]

    def tag_embeddings(self) -> Tensor:
        """[K, 512] one text embedding per class, in the space of the pooled image embedding.

        RAM's `label_embed` rows are the tags' CLIP text embeddings and its pooled image
        token is distilled towards CLIP's image embedding; RAM++ keeps 51 description
        embeddings per class, whose mean stands for the class. Text queries by tag name
        compare these with image embeddings.
        """
        per_class = self.label_embed.shape[0] // self.num_classes
        # float32 even when inference cast `label_embed` to bf16 / fp16 (ram_model.inference.precision).
        return self.label_embed.float().view(self.num_classes, per_class, -1).mean(dim=1)
