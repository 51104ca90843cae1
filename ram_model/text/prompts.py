"""Descriptions of a class from its name alone: the 63 prompt templates the official RAM code
uses for unseen categories (recognize-anything `ram/utils/openset_utils.py`).

Without an LLM to write descriptions, these stand in for them: RAM averages their
embeddings into one row per class; RAM++ keeps each one as a description and reweights
them per image, exactly as it does its own LLM-written ones.
"""
from __future__ import annotations

__all__ = ["TEMPLATES", "template_descriptions"]

# `{article}` is "a" or "an"; `{}` the class name.
TEMPLATES: tuple[str, ...] = (
    "There is {article} {} in the scene.", "There is the {} in the scene.",
    "a photo of {article} {} in the scene.", "a photo of the {} in the scene.", "a photo of one {} in the scene.",
    "itap of {article} {}.", "itap of my {}.", "itap of the {}.",
    "a photo of {article} {}.", "a photo of my {}.", "a photo of the {}.", "a photo of one {}.",
    "a photo of many {}.", "a good photo of {article} {}.", "a good photo of the {}.",
    "a bad photo of {article} {}.", "a bad photo of the {}.", "a photo of a nice {}.", "a photo of the nice {}.",
    "a photo of a cool {}.", "a photo of the cool {}.", "a photo of a weird {}.", "a photo of the weird {}.",
    "a photo of a small {}.", "a photo of the small {}.", "a photo of a large {}.", "a photo of the large {}.",
    "a photo of a clean {}.", "a photo of the clean {}.", "a photo of a dirty {}.", "a photo of the dirty {}.",
    "a bright photo of {article} {}.", "a bright photo of the {}.", "a dark photo of {article} {}.",
    "a dark photo of the {}.", "a photo of a hard to see {}.", "a photo of the hard to see {}.",
    "a low resolution photo of {article} {}.", "a low resolution photo of the {}.",
    "a cropped photo of {article} {}.", "a cropped photo of the {}.", "a close-up photo of {article} {}.",
    "a close-up photo of the {}.", "a jpeg corrupted photo of {article} {}.", "a jpeg corrupted photo of the {}.",
    "a blurry photo of {article} {}.", "a blurry photo of the {}.", "a pixelated photo of {article} {}.",
    "a pixelated photo of the {}.", "a black and white photo of the {}.", "a black and white photo of {article} {}.",
    "a plastic {}.", "the plastic {}.", "a toy {}.", "the toy {}.", "a plushie {}.", "the plushie {}.",
    "a cartoon {}.", "the cartoon {}.", "an embroidered {}.", "the embroidered {}.",
    "a painting of the {}.", "a painting of a {}.",
)


def _article(name: str) -> str:
    return "an" if name[:1].lower() in "aeiou" else "a"


def _plain_name(name: str) -> str:
    """LVIS writes `_` for spaces, Objects365 `/` for alternatives; no trailing dot."""
    return name.replace("_", " ").replace("/", " or ").lower().strip().rstrip(".")


def template_descriptions(name: str) -> list[str]:
    """The templated sentences for `name`, with the official "This is " before those starting with a/the."""
    plain = _plain_name(name)
    texts = [t.format(plain, article=_article(plain)) for t in TEMPLATES]
    return ["This is " + t if t.startswith(("a", "the")) else t for t in texts]
