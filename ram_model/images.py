"""Reading one image into an RGB PIL image, turning every way it can fail into `ImageLoadError`."""
from __future__ import annotations

import io
import os
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageLoadError

__all__ = ["ImageSource", "load_image", "describe_source"]

ImageSource = Union[str, "os.PathLike[str]", bytes, Image.Image, np.ndarray]

# Modes that hold 8-bit data per channel and convert to RGB the way the official pipeline does.
_CONVERTIBLE_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "La", "RGBa"}


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


def load_image(source: ImageSource, *, exif_transpose: bool = True, max_pixels: int = 89_478_485) -> Image.Image:
    """Decode `source` fully and return it as RGB.

    EXIF orientation is applied by default so that phone photos are tagged upright; pass
    `exif_transpose=False` for exact parity with the official pipeline, which ignores it.
    Images over `max_pixels` are refused before decoding (decompression bombs).
    """
    name = describe_source(source)
    try:
        img = _open(source)
        if img.width * img.height > max_pixels:
            raise ImageLoadError(
                f"{name}: {img.width}x{img.height} pixels exceeds the limit of {max_pixels} "
                "(possible decompression bomb)"
            )
        if img.mode not in _CONVERTIBLE_MODES:
            raise ImageLoadError(f"{name}: unsupported image mode {img.mode!r}; save it as 8-bit RGB")
        img.load()
        if exif_transpose:
            img = ImageOps.exif_transpose(img)
        return img if img.mode == "RGB" else img.convert("RGB")
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageLoadError(f"{name}: {e}") from e
    except UnidentifiedImageError as e:
        raise ImageLoadError(f"{name}: not a recognised image format") from e
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise ImageLoadError(f"{name}: cannot decode image ({e})") from e
