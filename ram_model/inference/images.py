"""Reading one image into an RGB PIL image, turning every way it can fail into `ImageLoadError`.

Awkward but valid images are tagged, not refused. Deeper-than-8-bit greyscale is scaled
to 8 bits the way common viewers show it:

* 16-bit integers (PNG/TIFF `I;16*`): the full 0..65535 range maps linearly onto 0..255
  (value / 257), so a 12-bit scan looks as dark here as in a browser;
* 32-bit integers (`I`): as 16-bit when every value fits 0..65535, else the image's own
  minimum..maximum is stretched onto 0..255;
* 32-bit floats (`F`): values within 0..1 are taken as intensities (x 255); otherwise the
  finite minimum..maximum is stretched; NaN becomes black, +/-inf the brightest/darkest.

CIE L*a*b* TIFFs are converted to sRGB through a colour transform. Only broken files,
decompression bombs and formats Pillow cannot decode are errors.
"""
from __future__ import annotations

import io
import os
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageLoadError

__all__ = ["ImageSource", "load_image", "describe_source", "exif_orientation"]

ImageSource = Union[str, "os.PathLike[str]", bytes, Image.Image, np.ndarray]

# Modes that hold 8-bit data per channel and convert to RGB the way the official pipeline does.
_CONVERTIBLE_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "La", "RGBa", "HSV"}
# Single-channel modes deeper than 8 bits: scaled to 8-bit greyscale first (module docstring).
_DEEP_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
_LAB_MODE = "LAB"
_UINT16_MAX = 65535
_EXIF_ORIENTATION = 0x0112


def _stretch(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.float64)
    return (values - low) * (255.0 / (high - low))


def _deep_to_8bit(img: Image.Image) -> Image.Image:
    """A greyscale `L` image from an `I;16*`, `I` or `F` one (scaling rules: module docstring)."""
    values = np.asarray(img)
    if img.mode == "F":
        values = values.astype(np.float64)
        finite = np.isfinite(values)
        if not finite.any():
            scaled = np.zeros(values.shape)
        else:
            low, high = float(values[finite].min()), float(values[finite].max())
            values = np.nan_to_num(values, nan=low, posinf=high, neginf=low)
            scaled = values * 255.0 if low >= 0.0 and high <= 1.0 else _stretch(values)
            scaled[np.isnan(np.asarray(img))] = 0.0
    else:
        values = values.astype(np.int64)
        if values.min() >= 0 and values.max() <= _UINT16_MAX:
            scaled = values / 257.0
        else:
            scaled = _stretch(values.astype(np.float64))
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def _lab_to_rgb(img: Image.Image) -> Image.Image:
    from PIL import ImageCms

    transform = ImageCms.buildTransformFromOpenProfiles(
        ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB")
    return ImageCms.applyTransform(img, transform)


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation tag (1: upright, also when there is none)."""
    return img.getexif().get(_EXIF_ORIENTATION, 1)


def describe_source(source: ImageSource) -> str:
    """A short label for error messages and results (a path, or what kind of object it was)."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array {source.shape}>"
    return f"<{type(source).__name__}>"


def _open(source: ImageSource) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim not in (2, 3):
            raise ImageLoadError(f"array images must be uint8 HxW or HxWxC, got {source.dtype} {source.shape}")
        return Image.fromarray(source)
    if isinstance(source, bytes):
        return Image.open(io.BytesIO(source))
    path = os.fspath(source)
    if not os.path.exists(path):
        raise ImageLoadError(f"image file not found: {path}")
    if os.path.isdir(path):
        raise ImageLoadError(f"expected an image file, got a directory: {path}")
    return Image.open(path)


def load_image(source: ImageSource, *, exif_transpose: bool = True, max_pixels: int = 89_478_485,
               draft_size: int | None = None) -> Image.Image:
    """Decode `source` fully and return it as RGB.

    EXIF orientation is applied by default so that phone photos are tagged upright; pass
    `exif_transpose=False` for exact parity with the official pipeline, which ignores it.
    Images over `max_pixels` are refused before decoding (decompression bombs).

    `draft_size`: a JPEG at least twice that size on both sides is decoded at 1/2, 1/4 or
    1/8 scale in the DCT domain (Pillow's `draft`), never below `draft_size`. Decoding is
    what bounds throughput once the model is fast (a 640x480 JPEG costs ~3 ms of CPU, the
    tiny model 0.8 ms; a 12 MP photo ~60 ms); the pixels then differ from a full decode by
    a few levels, so it is off unless asked for.
    """
    name = describe_source(source)
    try:
        img = _open(source)
        if img.width * img.height > max_pixels:
            raise ImageLoadError(
                f"{name}: {img.width}x{img.height} pixels exceeds the limit of {max_pixels} "
                "(possible decompression bomb)"
            )
        if img.mode not in _CONVERTIBLE_MODES | _DEEP_MODES | {_LAB_MODE}:
            raise ImageLoadError(f"{name}: unsupported image mode {img.mode!r}; save it as 8-bit RGB")
        if draft_size is not None and img.format == "JPEG" and img.mode in ("RGB", "L"):
            img.draft(img.mode, (draft_size, draft_size))
        img.load()
        if exif_transpose and exif_orientation(img) != 1:
            img = ImageOps.exif_transpose(img)  # copies the image, so only when there is something to turn
        if img.mode in _DEEP_MODES:
            img = _deep_to_8bit(img)
        elif img.mode == _LAB_MODE:
            img = _lab_to_rgb(img)
        elif img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")  # the same colours, without Pillow's warning about byte transparency
        return img if img.mode == "RGB" else img.convert("RGB")
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageLoadError(f"{name}: {e}") from e
    except UnidentifiedImageError as e:
        raise ImageLoadError(f"{name}: not a recognised image format") from e
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise ImageLoadError(f"{name}: cannot decode image ({e})") from e
