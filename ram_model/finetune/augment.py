"""The official training augmentation, with Pillow and NumPy only (torchvision cannot be imported here).

recognize-anything's `ram/data/__init__.py` trains on
`RandomResizedCrop(size, scale=(0.2, 1), bicubic) -> RandomHorizontalFlip ->
RandomAugment(2 ops, magnitude 5)` over ten operations, each drawn op applied with
probability 0.5 (`ram/data/randaugment.py`). The magnitudes below are that file's
level-to-argument rules at level 5 of 10. One deliberate difference: images are then
normalised with the ImageNet statistics the official *inference* transform uses (the
official trainer normalises with CLIP's), so that training sees what the engine will see.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from ..model.preprocess import to_model_input

__all__ = ["TrainAugment", "random_resized_crop", "RAND_AUGMENT_OPS"]

_MAX_LEVEL = 10
_FILL = (128, 128, 128)
RAND_AUGMENT_OPS = ("Identity", "AutoContrast", "Brightness", "Sharpness", "Equalize",
                    "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")


def random_resized_crop(img: Image.Image, size: int, rng: np.random.Generator,
                        scale: tuple[float, float] = (0.2, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Image.Image:
    """A crop of random area fraction and aspect ratio, resized (bicubic) to size x size.

    Ten tries at a crop that fits, then a centre crop clamped to the ratio range, like
    torchvision's RandomResizedCrop.
    """
    width, height = img.size
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return img.resize((size, size), Image.BICUBIC, box=(left, top, left + w, top + h))
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    top, left = (height - h) // 2, (width - w) // 2
    return img.resize((size, size), Image.BICUBIC, box=(left, top, left + w, top + h))


def _signed(value: float, rng: np.random.Generator) -> float:
    return -value if rng.random() > 0.5 else value


def _apply(name: str, img: Image.Image, level: int, rng: np.random.Generator) -> Image.Image:
    if name == "Identity":
        return img
    if name == "AutoContrast":
        return ImageOps.autocontrast(img)
    if name == "Equalize":
        return ImageOps.equalize(img)
    if name in ("Brightness", "Sharpness"):
        factor = level / _MAX_LEVEL * 1.8 + 0.1  # 1.0 at level 5, as in the official table
        enhancer = ImageEnhance.Brightness if name == "Brightness" else ImageEnhance.Sharpness
        return enhancer(img).enhance(factor)
    if name in ("ShearX", "ShearY"):
        shear = _signed(level / _MAX_LEVEL * 0.3, rng)
        data = (1, shear, 0, 0, 1, 0) if name == "ShearX" else (1, 0, 0, shear, 1, 0)
        return img.transform(img.size, Image.AFFINE, data, Image.BILINEAR, fillcolor=_FILL)
    if name in ("TranslateX", "TranslateY"):
        offset = _signed(level / _MAX_LEVEL * 10.0, rng)  # pixels, the official translate_const
        data = (1, 0, offset, 0, 1, 0) if name == "TranslateX" else (1, 0, 0, 0, 1, offset)
        return img.transform(img.size, Image.AFFINE, data, Image.BILINEAR, fillcolor=_FILL)
    if name == "Rotate":
        return img.rotate(_signed(level / _MAX_LEVEL * 30.0, rng), Image.BILINEAR, fillcolor=_FILL)
    raise ValueError(f"unknown augmentation {name!r}")


class TrainAugment:
    """Crop, flip and RandAugment one RGB image into a normalised [3, size, size] tensor."""

    def __init__(self, size: int, *, min_scale: float = 0.2, num_ops: int = 2, magnitude: int = 5,
                 ops: tuple[str, ...] = RAND_AUGMENT_OPS) -> None:
        self.size = size
        self.min_scale = min_scale
        self.num_ops = num_ops
        self.magnitude = magnitude
        self.ops = ops

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> torch.Tensor:
        img = random_resized_crop(img, self.size, rng, scale=(self.min_scale, 1.0))
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        for name in rng.choice(self.ops, self.num_ops):
            if rng.random() > 0.5:
                continue
            img = _apply(str(name), img, self.magnitude, rng)
        return to_model_input(img, self.size)
