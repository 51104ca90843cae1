"""Tiny random-weight checkpoints in the official layout, for tests and benchmarks.

The official weights cannot be downloaded everywhere (CI included), so fidelity is proven on
files that have the official structure: weights under `'model'`, the recomputable buffers
(`relative_position_index`, `attn_mask`) saved as the official code saves them, and, for RAM,
training-only `tag_encoder.*` / `text_decoder.*` entries. Every file written here carries the
random-weights marker, so no tool presents its tags as meaningful.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch

from .checkpoint import RANDOM_WEIGHTS_MARKER
from ..model.config import EngineConfig, HeadConfig, SwinConfig, packaged_file
from ..model.ram import RAMTagger
from ..model.vocab import read_lines

__all__ = [
    "TINY_TAGS",
    "TINY_SWIN",
    "TINY_HEAD",
    "TinyModelFiles",
    "make_tiny_checkpoint",
    "official_state_dict",
    "random_init_",
    "draw_shape",
]

# 48 real RAM tags (their official class thresholds and Chinese names are kept).
TINY_TAGS: tuple[str, ...] = (
    "dog", "cat", "car", "person", "tree", "sky", "building", "bicycle", "bird", "boat",
    "flower", "grass", "horse", "table", "chair", "cup", "bottle", "laptop", "book", "clock",
    "beach", "mountain", "road", "window", "water", "food", "pizza", "apple", "banana", "train",
    "bus", "truck", "kite", "umbrella", "bench", "sheep", "cow", "elephant", "cloud", "snow",
    "river", "bridge", "city", "street sign", "sunset", "flag", "shoe", "hat",
)

TINY_SWIN = SwinConfig(image_res=64, window_size=4, embed_dim=16, depths=(2, 2, 2, 2),
                       num_heads=(2, 2, 4, 4), vision_width=128)
TINY_HEAD = HeadConfig(hidden_size=64, intermediate_size=128, num_attention_heads=4,
                       num_hidden_layers=2, layer_norm_eps=1e-12)

# A few entries shaped like RAM's training-only modules (the real files hold ~230 of them).
_TRAINING_ONLY_SAMPLE: dict[str, tuple[tuple[int, ...], torch.dtype]] = {
    "tag_encoder.embeddings.position_ids": ((1, 16), torch.int64),
    "tag_encoder.embeddings.word_embeddings.weight": ((32, 8), torch.float32),
    "tag_encoder.encoder.layer.0.attention.self.query.weight": ((8, 8), torch.float32),
    "text_decoder.bert.embeddings.position_ids": ((1, 16), torch.int64),
    "text_decoder.cls.predictions.bias": ((32,), torch.float32),
}


@dataclass(frozen=True)
class TinyModelFiles:
    checkpoint: Path
    swin_config: Path
    head_config: Path
    tag_list: Path
    tag_list_zh: Path
    thresholds: Path
    variant: str

    def engine_config(self, **overrides: Any) -> EngineConfig:
        """An EngineConfig that loads exactly these files (CPU, fp32, one decode worker by default).

        fp32, not `auto`: tests compare these engines' numbers exactly, and `auto` runs bf16
        on CPUs with AMX. Pass `precision="auto"` (or bf16) to test the low-precision path.
        """
        base = EngineConfig(
            checkpoint=str(self.checkpoint), swin_config=str(self.swin_config), head_config=str(self.head_config),
            tag_list=str(self.tag_list), tag_list_zh=str(self.tag_list_zh), thresholds=str(self.thresholds),
            device="cpu", precision="fp32", batch_size=4, decode_workers=1,
        )
        return replace(base, **overrides)


def random_init_(model: RAMTagger, seed: int) -> RAMTagger:
    """Deterministic random weights with enough spread that classes and images differ."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("LayerNorm.weight") or ".norm" in name and name.endswith("weight"):
                param.copy_(1.0 + 0.1 * torch.randn(param.shape, generator=gen))
            elif name == "reweight_scale":
                param.fill_(float(torch.log(torch.tensor(1 / 0.07))))
            elif name == "label_embed":
                param.copy_(torch.randn(param.shape, generator=gen))
            elif param.dim() >= 2:
                fan_in = param[0].numel()
                param.copy_(torch.randn(param.shape, generator=gen) / fan_in**0.5)
            else:
                param.copy_(0.05 * torch.randn(param.shape, generator=gen))
    return model


def official_state_dict(model: RAMTagger, *, training_only: dict[str, torch.Tensor] | None = None
                        ) -> dict[str, torch.Tensor]:
    """The model's weights plus the buffers the official code saves, under the official key names."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for name, buf in model.named_buffers():
        if name.startswith("visual_encoder.") and name.rsplit(".", 1)[-1] in ("relative_position_index", "attn_mask"):
            sd[name] = buf.detach().clone()
    if training_only:
        sd.update(training_only)
    return sd


def _training_only_sample(gen: torch.Generator) -> dict[str, torch.Tensor]:
    out = {}
    for key, (shape, dtype) in _TRAINING_ONLY_SAMPLE.items():
        if dtype == torch.int64:
            out[key] = torch.arange(shape[-1]).expand(shape).clone()
        else:
            out[key] = torch.randn(shape, generator=gen)
    return out


def _write_vocab(directory: Path, tags: tuple[str, ...]) -> tuple[Path, Path, Path]:
    names = read_lines(packaged_file("ram_tag_list.txt"))
    zh = read_lines(packaged_file("ram_tag_list_chinese.txt"))
    thresholds = read_lines(packaged_file("ram_tag_list_threshold.txt"))
    index = {n: i for i, n in enumerate(names)}
    rows = [index[t] for t in tags]
    paths = directory / "tag_list.txt", directory / "tag_list_chinese.txt", directory / "thresholds.txt"
    paths[0].write_text("\n".join(tags) + "\n", encoding="utf-8")
    # Keep the official Chinese list's stray trailing spaces: the reader must strip them.
    paths[1].write_text("\n".join(zh[i] for i in rows) + "\n", encoding="utf-8")
    paths[2].write_text("\n".join(thresholds[i].strip() for i in rows) + "\n", encoding="utf-8")
    return paths


def make_tiny_checkpoint(directory: str | Path, *, variant: Literal["ram", "ram_plus"] = "ram_plus",
                         seed: int = 0, tags: tuple[str, ...] = TINY_TAGS,
                         swin: SwinConfig = TINY_SWIN, head: HeadConfig = TINY_HEAD,
                         legacy_prefix: bool = False) -> TinyModelFiles:
    """Write a random-weight checkpoint in the official layout plus its configs and vocabulary.

    `legacy_prefix=True` stores the head under the old `vision_multi.` name, as some
    official releases did.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = random_init_(RAMTagger(swin, head, len(tags), variant), seed)
    gen = torch.Generator().manual_seed(seed + 1)
    training_only = _training_only_sample(gen) if variant == "ram" else None
    sd = official_state_dict(model, training_only=training_only)
    if legacy_prefix:
        sd = {k.replace("tagging_head.", "vision_multi.", 1) if k.startswith("tagging_head.") else k: v
              for k, v in sd.items()}
    ckpt = directory / f"tiny_{variant}_seed{seed}.pth"
    torch.save({"model": sd, "epoch": 0, RANDOM_WEIGHTS_MARKER: True}, ckpt)
    swin_path, head_path = directory / "swin_config.json", directory / "q2l_config.json"
    swin_path.write_text(json.dumps(swin.to_dict(), indent=2))
    head_path.write_text(json.dumps(head.to_dict(), indent=2))
    tag_list, tag_list_zh, thresholds = _write_vocab(directory, tags)
    return TinyModelFiles(ckpt, swin_path, head_path, tag_list, tag_list_zh, thresholds, variant)


# A synthetic tagging task whose answer is in the pixels: each class is a coloured shape.
SHAPE_CLASSES: dict[str, tuple[tuple[int, int, int], str]] = {
    "dog": ((220, 30, 30), "square"),
    "cat": ((30, 60, 220), "circle"),
    "car": ((30, 180, 40), "triangle"),
    "tree": ((230, 210, 20), "square"),
    "bird": ((240, 130, 0), "circle"),
    "boat": ((20, 200, 210), "triangle"),
}


def draw_shapes(classes: list[tuple[str, tuple[tuple[int, int, int], str]]], size: int, seed: int):
    """An RGB image (PIL) with one coloured shape per class, each in its own quadrant, on grey noise."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    noise = rng.integers(90, 150, size=(size, size, 3), dtype=np.uint8)
    img = Image.fromarray(noise)
    draw = ImageDraw.Draw(img)
    half = size // 2
    quadrants = rng.permutation(4)
    for (_, (colour, shape)), q in zip(classes, quadrants):
        extent = int(half * rng.uniform(0.7, 0.95))
        x0 = (q % 2) * half + int(rng.integers(0, half - extent + 1))
        y0 = (q // 2) * half + int(rng.integers(0, half - extent + 1))
        draw_shape(draw, (x0, y0, x0 + extent, y0 + extent), colour, shape)
    return img


def draw_shape(draw, box: tuple[int, int, int, int], colour: tuple[int, int, int], shape: str) -> None:
    """One filled square, circle or triangle (apex at the top) in the square `box` of a PIL ImageDraw."""
    x0, y0, x1, y1 = box
    if shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "circle":
        draw.ellipse(box, fill=colour)
    else:
        draw.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=colour)


def make_shapes_dataset(directory: str | Path, count: int, *, seed: int = 0, image_size: int = 64,
                        tags: tuple[str, ...] = TINY_TAGS,
                        new_classes: dict[str, tuple[tuple[int, int, int], str]] | None = None,
                        file_name: str = "finetune.json") -> Path:
    """Images whose coloured shapes decide their tags, plus the official finetune JSON for them.

    Ids are positions in `tags`; a class in `new_classes` gets id `len(tags) + i`. Every
    image holds one to three of the classes; the file's reviewed set is therefore every
    class used, and the other tags stay unknown under the "reviewed" negatives policy.
    """
    import numpy as np

    directory = Path(directory)
    (directory / "images").mkdir(parents=True, exist_ok=True)
    palette = list(SHAPE_CLASSES.items()) + list((new_classes or {}).items())
    ids = {name: (tags.index(name) if name in tags else len(tags) + list(new_classes or {}).index(name))
           for name, _ in palette}
    rng = np.random.default_rng(seed)
    entries = []
    for i in range(count):
        chosen = [palette[j] for j in rng.choice(len(palette), size=int(rng.integers(1, 4)), replace=False)]
        path = directory / "images" / f"shape_{seed}_{i:04d}.png"
        draw_shapes(chosen, image_size, seed=seed * 100_003 + i).save(path)
        label_ids = sorted(ids[name] for name, _ in chosen)
        entries.append({"image_path": f"images/{path.name}", "caption": [", ".join(n for n, _ in chosen)],
                        "union_label_id": label_ids, "parse_label_id": [label_ids]})
    out = directory / file_name
    out.write_text(json.dumps(entries), encoding="utf-8")
    return out
