"""Preparing a loaded tagger for training: new classes, what trains, checkpointing, precision."""
from __future__ import annotations

import functools
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from ..model.config import DESCRIPTIONS_PER_CLASS
from ..inference.precision import cpu_has_amx
from ..model.ram import RAMTagger
from ..model.swin import SwinBlock
from ..model.tagging_head import QueryLayer

__all__ = ["grow_classes", "trainable_parameter_groups", "enable_gradient_checkpointing",
           "training_autocast_dtype", "cpu_has_amx", "HEAD_MODULES"]

# What `mode="head"` trains (plus the last `unfreeze_stages` Swin stages).
HEAD_MODULES = ("image_proj", "wordvec_proj", "tagging_head", "fc")
# Spread of the new label-embedding rows around the mean of the existing ones, relative to
# the rows' own standard deviation: enough to break the symmetry between new classes.
_NEW_ROW_NOISE = 0.1


def _rows_per_class(model: RAMTagger) -> int:
    return DESCRIPTIONS_PER_CLASS if model.variant == "ram_plus" else 1


def grow_classes(model: RAMTagger, count: int, *, seed: int) -> RAMTagger:
    """A copy of `model` with `count` more classes; new `label_embed` rows = mean of the old + noise.

    `fc` is one shared linear layer in RAM and RAM++ (not per class), so only
    `label_embed` grows: one row per class for RAM, 51 description rows for RAM++.
    """
    if count <= 0:
        return model
    grown = RAMTagger(model.visual_encoder.cfg, _head_config_of(model), model.num_classes + count, model.variant)  # type: ignore[arg-type]
    old = model.state_dict()
    embed = old.pop("label_embed")
    per = _rows_per_class(model)
    gen = torch.Generator().manual_seed(seed)
    mean, std = embed.mean(dim=0), embed.std(dim=0)
    noise = torch.randn(count * per, embed.shape[1], generator=gen) * std * _NEW_ROW_NOISE
    new_rows = (mean + noise).to(embed.dtype)
    grown.load_state_dict({**old, "label_embed": torch.cat([embed, new_rows])}, strict=True)
    return grown


def _head_config_of(model: RAMTagger):  # type: ignore[no-untyped-def]
    from ..model.config import HeadConfig

    layer = model.tagging_head.encoder.layer[0]
    return HeadConfig(hidden_size=layer.crossattention.self.query.out_features,
                      intermediate_size=layer.intermediate.dense.out_features,
                      num_attention_heads=layer.crossattention.self.num_heads,
                      num_hidden_layers=len(model.tagging_head.encoder.layer),
                      layer_norm_eps=layer.output.LayerNorm.eps)


def trainable_parameter_groups(model: RAMTagger, *, mode: str, unfreeze_stages: int, old_classes: int,
                               weight_decay: float, lr: float = 1e-4, new_class_lr_scale: float = 1.0
                               ) -> list[dict[str, Any]]:
    """Freeze what the mode keeps fixed; return AdamW groups for the rest.

    `label_embed` stays frozen for the existing classes, as in the official recipe. When
    classes were added, the whole tensor trains but a gradient hook zeroes the old rows,
    and it sits in a group without weight decay: AdamW with a zero gradient and no decay
    leaves those rows bit-identical, while the new rows learn (at `lr * new_class_lr_scale`).
    """
    for p in model.parameters():
        p.requires_grad_(False)
    if mode == "full":
        for name, p in model.named_parameters():
            p.requires_grad_(name != "label_embed")
    else:
        for name in HEAD_MODULES:
            for p in getattr(model, name).parameters():
                p.requires_grad_(True)
        stages = model.visual_encoder.layers
        if unfreeze_stages > len(stages):
            raise ValueError(f"unfreeze_stages={unfreeze_stages} but the backbone has {len(stages)} stages")
        for stage in list(stages)[len(stages) - unfreeze_stages:] if unfreeze_stages else []:
            for p in stage.parameters():
                p.requires_grad_(True)
        if unfreeze_stages:
            for p in model.visual_encoder.norm.parameters():
                p.requires_grad_(True)
    groups: list[dict[str, Any]] = [
        {"params": [p for n, p in model.named_parameters() if p.requires_grad], "weight_decay": weight_decay,
         "lr": lr},
    ]
    if model.num_classes > old_classes:
        embed = model.label_embed
        embed.requires_grad_(True)
        keep = old_classes * _rows_per_class(model)
        mask = torch.ones(embed.shape[0], 1)
        mask[:keep] = 0
        embed.register_hook(lambda grad: grad * mask.to(grad.device, grad.dtype))
        groups.append({"params": [embed], "weight_decay": 0.0, "lr": lr * new_class_lr_scale})
    return [g for g in groups if g["params"]]


def _checkpointed_forward(forward, *args):  # type: ignore[no-untyped-def]
    if torch.is_grad_enabled():
        return checkpoint(forward, *args, use_reentrant=False)
    return forward(*args)


def enable_gradient_checkpointing(model: RAMTagger) -> int:
    """Recompute Swin blocks and head layers in the backward pass instead of storing activations.

    The instance's `forward` is wrapped in place (not the module replaced), so parameter
    names, and with them the saved files, stay exactly as without checkpointing.
    Returns how many modules were wrapped.
    """
    wrapped = 0
    for module in model.modules():
        if isinstance(module, (SwinBlock, QueryLayer)) and any(p.requires_grad for p in module.parameters()):
            module.forward = functools.partial(_checkpointed_forward, module.forward)  # type: ignore[method-assign]
            wrapped += 1
    return wrapped


def training_autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA and on AMX CPUs when `precision="auto"`; fp32 elsewhere."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_amx()):
        return torch.bfloat16
    return None

