"""Photo-like test JPEGs for the speed benchmarks, made from a seed (no files to download).

Uniform random noise is the wrong test image: it compresses badly (about 600 KB at
640x480, quality 90) and decodes about 1.45x slower than a photo, so a benchmark on noise
overstates the cost of decoding. These pictures are built like a photo's statistics:
a smooth sky-to-ground gradient, multi-octave value noise (the 1/f falloff of natural
textures), a few filled shapes with soft edges (objects), fine texture and mild sensor
noise. Every fourth file carries an EXIF orientation tag (6, "rotate 90"), as phone
photos do, so the EXIF path is exercised. The mean file size is printed so a reader can
compare with real photos (about 150-300 KB at 640x480, quality 90).

    PYTHONPATH=. python bench/natural_images.py --count 8 [--size 4000x3000] [--out DIR]
"""
from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["SIZES", "has_orientation_tag", "natural_image", "jpeg_bytes", "write_jpegs", "describe_files", "parse_size"]

# Named sizes: the usual web/phone-thumbnail frame and a 12 MP phone photo.
SIZES = {"640x480": (640, 480), "12mp": (4000, 3000)}
QUALITY = 90
EXIF_ORIENTATION_TAG = 0x0112
ROTATE_90 = 6
# Every n-th image (index % n == n - 1) is saved with an orientation tag.
EXIF_EVERY = 4
# Texture and grain strengths, tuned so a 640x480 q90 file weighs about what a photo does.
DETAIL = 60.0
GRAIN = 12.0
WORK_SIDE = 800


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' or a name from SIZES -> (width, height)."""
    if text.lower() in SIZES:
        return SIZES[text.lower()]
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def _value_noise(rng: np.random.Generator, width: int, height: int, octaves: int = 9,
                 coarsest: tuple[int, int] = (3, 2)) -> np.ndarray:
    """[H, W] float32 of unit scale: random grids from coarse to fine, as a pyramid.

    Each octave doubles the previous field's resolution (bicubic) and adds finer random
    values at a constant fraction of the amplitude, so detail falls off like natural
    textures; building it as a pyramid costs about one full-size resize, not one per octave.
    """
    field = rng.standard_normal((coarsest[1], coarsest[0])).astype(np.float32)
    amplitude = 1.0
    for _ in range(octaves - 1):
        h, w = field.shape
        if w * 2 > width * 2 or h * 2 > height * 2:
            break
        field = np.asarray(Image.fromarray(field, mode="F").resize((w * 2, h * 2), Image.BICUBIC))
        amplitude *= 0.62
        field = field + amplitude * rng.standard_normal(field.shape, dtype=np.float32)
    field = np.asarray(Image.fromarray(field, mode="F").resize((width, height), Image.BICUBIC))
    return field / max(float(field.std()), 1e-6)


def _soft_shape_mask(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """[H, W] float32 in [0, 1]: one ellipse or polygon with a soft (out-of-focus) edge.

    Drawn at a quarter of the size and enlarged bilinearly: the edge softens over a few
    pixels, as a lens blurs it, for the price of one small resize instead of a Gaussian blur.
    """
    small_w, small_h = max(4, width // 4), max(4, height // 4)
    mask = Image.new("L", (small_w, small_h), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy = rng.uniform(0.1, 0.9) * small_w, rng.uniform(0.2, 0.95) * small_h
    rx, ry = rng.uniform(0.05, 0.25) * small_w, rng.uniform(0.05, 0.25) * small_h
    if rng.random() < 0.5:
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=255)
    else:
        angles = np.sort(rng.uniform(0, 2 * np.pi, size=int(rng.integers(3, 8))))
        radius = rng.uniform(0.6, 1.0, size=angles.size)
        draw.polygon([(cx + rx * r * np.cos(a), cy + ry * r * np.sin(a)) for a, r in zip(angles, radius)],
                     fill=255)
    return np.asarray(mask.resize((width, height), Image.BILINEAR), dtype=np.float32) / 255.0


def _scene(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """([H, W, 3] float32 picture, [H, W] where-textured mask) at the working resolution."""
    yy = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    sky, ground = rng.uniform(120, 230, size=3), rng.uniform(30, 140, size=3)
    horizon = rng.uniform(0.3, 0.7)
    blend = 1.0 / (1.0 + np.exp(-(yy - horizon) * 12.0))  # soft horizon
    img = (1 - blend)[..., None] * sky + blend[..., None] * ground  # [H, 1, 3]
    img = np.broadcast_to(img, (height, width, 3)).astype(np.float32)

    # Luminance texture plus smoother colour fields: natural colour varies less than brightness.
    luma = _value_noise(rng, width, height)
    img = img + 45.0 * luma[..., None]
    for channel in range(3):
        img[..., channel] += 18.0 * _value_noise(rng, width, height, octaves=4)

    for _ in range(int(rng.integers(3, 7))):
        mask = _soft_shape_mask(rng, width, height)[..., None]
        colour = rng.uniform(20, 235, size=3).astype(np.float32)
        shift = (int(rng.integers(height)), int(rng.integers(width)))
        texture = 30.0 * np.roll(luma, shift, axis=(0, 1))[..., None]
        img = img * (1 - mask) + (colour + texture) * mask

    # Sharp thin strokes (branches, wires, text edges): the high frequencies photos have and blur lacks.
    strokes = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(strokes)
    scale = max(width, height) / 640
    for _ in range(int(rng.integers(20, 60))):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        points = [(x, y)]
        for _ in range(int(rng.integers(2, 6))):
            x, y = x + rng.normal(0, 40 * scale), y + rng.normal(0, 40 * scale)
            points.append((x, y))
        draw.line(points, fill=int(rng.integers(40, 255)), width=max(1, int(rng.uniform(1, 3) * scale)))
    img -= 0.35 * np.asarray(strokes, dtype=np.float32)[..., None]
    where = np.clip(0.5 + _value_noise(rng, width, height, octaves=3), 0, 1) * (0.3 + 0.7 * blend)
    return img, np.broadcast_to(where, (height, width)).astype(np.float32)


def _upscale(arr: np.ndarray, width: int, height: int) -> np.ndarray:
    if arr.ndim == 2:
        return np.asarray(Image.fromarray(arr, mode="F").resize((width, height), Image.BICUBIC))
    return np.stack([_upscale(np.ascontiguousarray(arr[..., c]), width, height) for c in range(arr.shape[-1])], -1)


def natural_image(width: int = 640, height: int = 480, seed: int = 0) -> Image.Image:
    """An RGB picture with a photo's structure (module docstring); the same seed gives the same pixels.

    The scene is drawn at most WORK_SIDE pixels wide and upscaled (as a lens would blur it),
    then fine texture and sensor noise are added at full resolution: a 12 MP picture takes
    seconds, not a minute.
    """
    rng = np.random.default_rng(seed)
    shrink = max(1.0, max(width, height) / WORK_SIDE)
    work_w, work_h = max(8, round(width / shrink)), max(8, round(height / shrink))
    img, where = _scene(rng, work_w, work_h)
    if (work_w, work_h) != (width, height):
        img, where = _upscale(img, width, height), _upscale(where, width, height)
    # Fine texture (foliage, gravel, fabric) a few pixels across, where the mask says so; then sensor noise.
    detail = _value_noise(rng, width, height, octaves=2, coarsest=(max(2, width // 3), max(2, height // 3)))
    img += (DETAIL * detail * where)[..., None]
    img += GRAIN * rng.standard_normal((height, width, 1), dtype=np.float32)
    img += 3.0 * rng.standard_normal((height, width, 3), dtype=np.float32)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def has_orientation_tag(index: int) -> bool:
    """Whether the `index`-th benchmark picture carries an EXIF orientation tag (it is shown rotated)."""
    return index % EXIF_EVERY == EXIF_EVERY - 1


def _exif_for(index: int) -> bytes | None:
    if not has_orientation_tag(index):
        return None
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = ROTATE_90
    return exif.tobytes()


def jpeg_bytes(index: int, size: tuple[int, int] = SIZES["640x480"], *, seed: int = 0,
               quality: int = QUALITY) -> bytes:
    """The `index`-th benchmark JPEG as bytes (EXIF orientation on every EXIF_EVERY-th)."""
    buf = io.BytesIO()
    exif = _exif_for(index)
    extra = {"exif": exif} if exif else {}
    natural_image(*size, seed=seed * 1_000_003 + index).save(buf, "JPEG", quality=quality, **extra)
    return buf.getvalue()


def _write_one(job: tuple[Path, int, tuple[int, int], int, int]) -> Path:
    path, index, size, seed, quality = job
    path.write_bytes(jpeg_bytes(index, size, seed=seed, quality=quality))
    return path


def write_jpegs(directory: str | Path, count: int, size: tuple[int, int] = SIZES["640x480"], *,
                seed: int = 0, quality: int = QUALITY, processes: int | None = None) -> list[Path]:
    """Write `count` benchmark JPEGs into `directory` (created) and return their paths, in order.

    Drawing takes ~0.3 s per 640x480 picture on one core, so they are drawn in parallel
    (`processes`, default: every core).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    jobs = [(directory / f"natural_{size[0]}x{size[1]}_{seed}_{i:05d}.jpg", i, size, seed, quality)
            for i in range(count)]
    processes = min(processes or os.cpu_count() or 1, count)
    if processes <= 1:
        return [_write_one(job) for job in jobs]
    # fork where there is one: no re-import of the caller's script (call this before CUDA starts);
    # spawn elsewhere, which needs the caller's `if __name__ == "__main__"` guard.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(processes) as pool:
        return pool.map(_write_one, jobs)


def describe_files(paths: list[Path] | list[bytes]) -> str:
    """'8 JPEGs 640x480 q90, mean 180 KB, 2 with an EXIF orientation tag' for the benchmark headers."""
    sizes = [len(p) if isinstance(p, bytes) else Path(p).stat().st_size for p in paths]
    first = Image.open(io.BytesIO(paths[0]) if isinstance(paths[0], bytes) else paths[0])
    tagged = sum(1 for i in range(len(paths)) if _exif_for(i))
    return (f"{len(paths)} natural-looking JPEGs {first.width}x{first.height} q{QUALITY}, mean "
            f"{np.mean(sizes) / 1024:.0f} KB (photos: ~150-300 KB at 640x480), "
            f"{tagged} with an EXIF orientation tag")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT or 12mp (4000x3000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="folder to keep the files in (default: a temporary one)")
    args = parser.parse_args()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="natural-jpegs-"))
    paths = write_jpegs(out, args.count, parse_size(args.size), seed=args.seed)
    print(describe_files(paths))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
