"""Awkward but valid images are tagged, not refused; only broken files, bombs and
unsupported formats are errors (issue 12, item 6)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from ram_model.errors import ImageLoadError
from ram_model.inference.images import load_image


def _encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _grey(img: Image.Image) -> np.ndarray:
    rgb = np.asarray(img)
    assert img.mode == "RGB" and (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    return rgb[..., 0]


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_greyscale_maps_the_full_range_linearly(fmt: str) -> None:
    values = np.array([[0, 257, 32896, 65535], [1000, 2570, 60000, 65279]], dtype=np.uint16)
    img = load_image(_encoded(Image.fromarray(values), fmt))
    assert _grey(img).tolist() == np.rint(values / 257).astype(int).tolist()


def test_float_tiff_in_unit_range_is_taken_as_intensity_else_stretched() -> None:
    unit = np.array([[0.0, 0.25, 0.5, 1.0]], dtype=np.float32)
    assert _grey(load_image(_encoded(Image.fromarray(unit), "TIFF"))).tolist() == [[0, 64, 128, 255]]
    wide = np.array([[-10.0, 0.0, 10.0, np.nan, np.inf, -np.inf]], dtype=np.float32)
    assert _grey(load_image(_encoded(Image.fromarray(wide), "TIFF"))).tolist() == [[0, 128, 255, 0, 255, 0]]


def test_32_bit_integer_tiff_is_stretched_when_it_exceeds_16_bits() -> None:
    values = np.array([[-5000, 0, 95000]], dtype=np.int32)
    assert _grey(load_image(_encoded(Image.fromarray(values), "TIFF"))).tolist() == [[0, 13, 255]]


def test_exif_rotated_16_bit_png_is_upright_and_scaled() -> None:
    values = np.zeros((20, 40), dtype=np.uint16)
    values[:, :10] = 65535  # a white stripe on the left of a wide image
    exif = Image.Exif()
    exif[274] = 6  # rotate 90 degrees clockwise to display
    img = load_image(_encoded(Image.fromarray(values), "PNG", exif=exif.tobytes()))
    assert img.size == (20, 40)
    assert (_grey(img)[:10] == 255).all() and (_grey(img)[10:] == 0).all()  # the stripe is now on top


def test_lab_tiff_is_converted_to_srgb() -> None:
    red = Image.new("RGB", (8, 8), (200, 30, 30))
    to_lab = ImageCms.buildTransformFromOpenProfiles(ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"),
                                                     "RGB", "LAB")
    img = load_image(_encoded(ImageCms.applyTransform(red, to_lab), "TIFF"))
    assert np.abs(np.asarray(img)[0, 0].astype(int) - [200, 30, 30]).max() <= 4


def _awkward_files(folder: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    files = {
        "grey16.png": lambda p: Image.fromarray((rng.integers(0, 65536, (48, 64))).astype(np.uint16)).save(p),
        "grey16.tif": lambda p: Image.fromarray((rng.integers(0, 65536, (48, 64))).astype(np.uint16)).save(p),
        "float32.tiff": lambda p: Image.fromarray(rng.random((48, 64), dtype=np.float32) * 7 - 2).save(p),
        "la.png": lambda p: rgb.convert("LA").save(p),
        "palette transparent.png": lambda p: rgb.convert("RGBA").convert("P").save(p, transparency=0),
        "pa.tif": lambda p: rgb.convert("PA").save(p),
        "cmyk.jpg": lambda p: rgb.convert("CMYK").save(p),
        "bilevel.png": lambda p: rgb.convert("1").save(p),
        "rgba.webp": lambda p: rgb.convert("RGBA").save(p),
        "animated.gif": lambda p: rgb.save(p, save_all=True, append_images=[rgb.rotate(90)], duration=50),
        "ünïcødé 画像.jpg": lambda p: rgb.save(p),
    }
    paths = []
    for name, write in files.items():
        write(folder / name)
        paths.append(folder / name)
    return paths


def test_every_awkward_but_valid_image_is_tagged(tiny_engine, tmp_path: Path) -> None:
    paths = _awkward_files(tmp_path)
    results = tiny_engine.predict([str(p) for p in paths])
    assert [(Path(r.source).name, r.error) for r in results] == [(p.name, None) for p in paths]


def test_broken_files_and_bombs_are_still_errors(tiny_engine, tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    good = _encoded(Image.new("RGB", (64, 64), "red"), "PNG")
    (tmp_path / "truncated.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "folder.jpg").mkdir()
    Image.new("1", (10_000, 9_000)).save(tmp_path / "bomb.png")  # 90 Mpx, a few kB on disk
    names = ["empty.png", "text.jpg", "truncated.png", "folder.jpg", "bomb.png"]
    results = tiny_engine.predict([str(tmp_path / n) for n in names])
    errors = {Path(r.source).name: r.error for r in results}
    assert all(errors[n] for n in names), errors
    assert "not a recognised image format" in errors["empty.png"]
    assert "directory" in errors["folder.jpg"]
    assert "decompression bomb" in errors["bomb.png"]
    with pytest.raises(ImageLoadError, match="limit"):
        load_image(good, max_pixels=100)
