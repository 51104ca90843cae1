"""JPEG decoding on a CUDA GPU (nvJPEG through torchvision), for `EngineConfig(gpu_decode=True)`.

At a thousand images a second the CPU cannot decode fast enough; the GPU can. Decode
threads only read a JPEG's bytes and its header (size, mode, EXIF orientation); the
batch is decoded and resized on the GPU. Everything nvJPEG should not or cannot do (other
formats, CMYK, images that need turning upright, too many pixels, a decode failure) goes
through Pillow as before, one image at a time.

torchvision is imported only here and only when asked for: a CUDA torchvision wheel next
to a CPU torch does not even import, and the engine must work without it.

The GPU resize is bilinear with antialiasing, like Pillow's, but not bit-identical: the
same `interpolate` call run on the CPU differs from Pillow by at most 1 level of 255 (mean
0.05-0.18, 640x480 and 12 MP photos to 64 and 384). nvJPEG's IDCT may differ from libjpeg's
by about as much again. Neither was measured on a GPU where this was written, so compare
with `gpu_decode=False` before relying on it.
"""
from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from .images import ImageSource, exif_orientation

__all__ = ["EncodedJpeg", "GpuJpegDecoder"]

_log = logging.getLogger(__name__)
_JPEG_MAGIC = b"\xff\xd8\xff"
_NVJPEG_MODES = ("RGB", "L")


@dataclass(frozen=True)
class EncodedJpeg:
    """A JPEG's bytes, read by a decode thread, waiting for the batch's GPU decode."""

    data: torch.Tensor  # uint8, 1-D: the file's bytes
    source: ImageSource


class GpuJpegDecoder:
    """Batch JPEG decode + resize to uint8 [3, S, S] on one CUDA device."""

    def __init__(self, device: torch.device, size: int, *, exif_transpose: bool, max_pixels: int,
                 io_module: Any) -> None:
        self.device, self.size = device, size
        self._exif_transpose, self._max_pixels = exif_transpose, max_pixels
        self._io = io_module

    @classmethod
    def create(cls, device: torch.device, size: int, *, exif_transpose: bool, max_pixels: int
               ) -> "GpuJpegDecoder | None":
        """The decoder, or None (with one warning) where GPU decoding cannot run here."""
        if device.type != "cuda":
            _log.warning("gpu_decode needs a CUDA device (this engine runs on %s); decoding with Pillow", device)
            return None
        try:
            import torchvision.io as tv_io  # noqa: PLC0415 - optional, and only for this path

            probe = tv_io.decode_jpeg(_tiny_jpeg(), device=device)
            if probe.device.type != "cuda":
                raise RuntimeError("decode_jpeg did not decode on the GPU")
        except Exception as e:  # noqa: BLE001 - any reason at all means: use Pillow
            _log.warning("gpu_decode: torchvision cannot decode JPEGs on %s (%s: %s); decoding with Pillow",
                         device, type(e).__name__, e)
            return None
        return cls(device, size, exif_transpose=exif_transpose, max_pixels=max_pixels, io_module=tv_io)

    # -- in the decode threads ----------------------------------------------------------
    def encoded(self, source: ImageSource) -> EncodedJpeg | None:
        """The JPEG's bytes when nvJPEG can take it as it is; None: use Pillow."""
        if isinstance(source, (str, os.PathLike)):
            try:
                with open(source, "rb") as f:
                    data = f.read()
            except OSError:
                return None  # Pillow's path gives the error message users know
        elif isinstance(source, bytes):
            data = source
        else:
            return None
        if not data.startswith(_JPEG_MAGIC):
            return None
        try:
            with Image.open(io.BytesIO(data)) as header:  # reads the header only
                if header.format != "JPEG" or header.mode not in _NVJPEG_MODES:
                    return None
                if header.width * header.height > self._max_pixels:
                    return None
                if self._exif_transpose and exif_orientation(header) != 1:
                    return None
        except Exception:  # noqa: BLE001 - Pillow will say what is wrong with it
            return None
        return EncodedJpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), source)

    # -- on the consuming thread --------------------------------------------------------
    def decode(self, items: list[EncodedJpeg]) -> list[torch.Tensor | None]:
        """uint8 [3, S, S] on the GPU per item, None where nvJPEG failed (the caller uses Pillow)."""
        if not items:
            return []
        rgb = self._io.ImageReadMode.RGB
        try:
            decoded: list[torch.Tensor | None] = list(
                self._io.decode_jpeg([i.data for i in items], mode=rgb, device=self.device))
        except Exception:  # noqa: BLE001 - one bad file fails the whole batch call; retry one by one
            decoded = []
            for item in items:
                try:
                    decoded.append(self._io.decode_jpeg(item.data, mode=rgb, device=self.device))
                except Exception:  # noqa: BLE001
                    decoded.append(None)
        return [None if d is None else self._resize(d) for d in decoded]

    def _resize(self, image: torch.Tensor) -> torch.Tensor:
        resized = torch.nn.functional.interpolate(image.unsqueeze(0).float(), size=(self.size, self.size),
                                                  mode="bilinear", antialias=True, align_corners=False)
        return resized.squeeze(0).round_().clamp_(0, 255).to(torch.uint8)


def _tiny_jpeg() -> torch.Tensor:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (128, 64, 32)).save(buf, format="JPEG")
    return torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)
