"""The input pipeline: `predict_iter` streams any iterable in order, keeps a bounded look-ahead,
turns bad images into per-image errors, and its uint8 path normalises exactly as before."""
from __future__ import annotations

import io
import logging
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from ram_model import TaggingEngine
from ram_model.inference.gpu_decode import EncodedJpeg, GpuJpegDecoder
from ram_model.inference.images import load_image
from ram_model.inference.pipeline import batched, default_decode_workers, prefetch_batches
from ram_model.model.preprocess import normalize, to_model_input, to_uint8_tensor


def _paths(image_dir: Path) -> list[str]:
    return sorted(str(p) for p in image_dir.rglob("*.*"))


def _mixed_sources(image_dir: Path, tmp_path: Path) -> list[str]:
    """Six good images, then a missing file, three good, a broken file, four good: 15 in all."""
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    good = _paths(image_dir)
    return [*good, str(tmp_path / "missing.png"), *good[:3], str(broken), *good[:4]]


def test_predict_iter_of_a_generator_equals_predict_with_errors_in_place(tiny_files, image_dir: Path,
                                                                         tmp_path: Path) -> None:
    engine = TaggingEngine.from_config(tiny_files.engine_config(batch_size=4, decode_workers=2))
    sources = _mixed_sources(image_dir, tmp_path)
    seen: list[tuple[int, int | None]] = []
    streamed = list(engine.predict_iter((s for s in sources), progress=lambda d, t: seen.append((d, t))))
    listed = engine.predict(sources)
    assert [r.source for r in streamed] == [r.source for r in listed] == sources
    assert [r.ok for r in streamed] == [r.ok for r in listed]
    assert "not found" in streamed[6].error and streamed[10].error is not None
    for a, b in zip(streamed, listed):
        if a.ok:
            np.testing.assert_array_equal(a.probs, b.probs)
    assert len(sources) == 15 and seen == [(4, None), (8, None), (12, None), (15, None)]  # no length: None


def test_a_generator_is_read_lazily_with_a_bounded_look_ahead(tiny_files, image_dir: Path) -> None:
    engine = TaggingEngine.from_config(tiny_files.engine_config(batch_size=2, decode_workers=2, prefetch_batches=2))
    paths = _paths(image_dir)
    pulled = 0

    def endless():  # a million-path input must never be materialised
        nonlocal pulled
        while True:
            pulled += 1
            yield paths[pulled % len(paths)]

    stream = engine.predict_iter(endless())
    first = next(stream)
    assert first.ok
    assert pulled <= (2 + 1) * 2 + 1  # the batch being used plus two decoding ahead
    assert len(list(islice(stream, 20))) == 20
    stream.close()  # stopping early cancels what is queued; the engine keeps working
    assert all(r.ok for r in engine.predict(paths))


def test_chunked_consumers_and_other_calls_in_between_neither_reorder_nor_drop(tiny_files, image_dir: Path) -> None:
    """The CLI and the plugin take a stream in chunks that do not line up with batches, while
    the server may call `predict` on the same engine (same decode pool) meanwhile."""
    engine = TaggingEngine.from_config(tiny_files.engine_config(batch_size=4, decode_workers=2))
    paths = _paths(image_dir) * 5  # 30 images
    expected = engine.predict_proba(paths)
    stream = engine.predict_iter(iter(paths))
    got: list[np.ndarray] = []
    for chunk in batched(stream, 7):
        got.extend(r.probs for r in chunk)
        other = engine.predict(paths[:5])  # interleaved work on the shared pool
        assert [r.source for r in other] == paths[:5]
    np.testing.assert_array_equal(np.stack(got), expected)


def test_inline_decoding_and_default_workers(tiny_files, image_dir: Path) -> None:
    paths = _paths(image_dir)
    inline = TaggingEngine.from_config(tiny_files.engine_config(decode_workers=0))
    default = TaggingEngine.from_config(tiny_files.engine_config(decode_workers=None))
    assert inline.info()["decode_workers"] == 0
    assert default.info()["decode_workers"] == default_decode_workers() >= 2
    np.testing.assert_array_equal(inline.predict_proba(paths), default.predict_proba(paths))


def test_prefetcher_keeps_order_and_cancels_what_it_did_not_hand_out() -> None:
    from concurrent.futures import ThreadPoolExecutor

    calls: list[int] = []

    def prepare(x: int) -> int:
        calls.append(x)
        return x * 10

    with ThreadPoolExecutor(2) as pool:
        out = list(prefetch_batches(range(11), 3, prepare, pool, depth=2))
        assert [s for s, _ in out] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10]]
        assert [p for _, p in out] == [[0, 10, 20], [30, 40, 50], [60, 70, 80], [90, 100]]
        calls.clear()
        stream = prefetch_batches(range(1000), 3, prepare, pool, depth=1)
        next(stream)
        stream.close()
    assert len(calls) <= 2 * 3  # never more than the batch handed out and one ahead
    assert list(prefetch_batches([], 3, prepare, None, depth=2)) == []


def test_uint8_path_normalises_exactly_as_the_float_path_did(image_dir: Path) -> None:
    """The old worker output: float [0, 1] from PIL, ImageNet-normalised, per image."""
    images = [load_image(p) for p in _paths(image_dir)]
    old = []
    for img in images:
        arr = np.asarray(img.resize((64, 64), Image.BILINEAR), dtype=np.uint8)
        t = torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(255)
        old.append((t - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1))
                   / torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1))
    batch = torch.stack([to_uint8_tensor(img, 64) for img in images])
    assert batch.dtype == torch.uint8 and batch.shape == (len(images), 3, 64, 64)
    assert torch.equal(normalize(batch), torch.stack(old))
    assert torch.equal(to_model_input(images[0], 64), old[0])


def test_exif_transpose_only_runs_for_an_orientation_tag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It copies the whole image; a photo without an orientation tag must come back unchanged without it."""
    pixels = np.random.default_rng(0).integers(0, 255, (40, 80, 3), dtype=np.uint8)
    plain, upright, turned = tmp_path / "plain.jpg", tmp_path / "upright.jpg", tmp_path / "turned.jpg"
    Image.fromarray(pixels).save(plain, quality=95)
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x0112] = 1
    Image.fromarray(pixels).save(upright, exif=exif, quality=95)
    exif[0x0112] = 6
    Image.fromarray(pixels).save(turned, exif=exif, quality=95)
    expected = {p: np.asarray(ImageOps.exif_transpose(Image.open(p)).convert("RGB")) for p in (plain, upright, turned)}

    calls: list[Path] = []
    real = ImageOps.exif_transpose
    monkeypatch.setattr(ImageOps, "exif_transpose", lambda img, **kw: calls.append(img) or real(img, **kw))
    for path, want in expected.items():
        np.testing.assert_array_equal(np.asarray(load_image(path)), want)
    assert len(calls) == 1 and load_image(turned).size == (40, 80)


def _jpeg(path: Path, size=(96, 72), mode="RGB", orientation: int | None = None) -> Path:
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    img = img.convert(mode)
    kwargs = {}
    if orientation is not None:
        exif = img.getexif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif
    img.save(path, format="JPEG", **kwargs)
    return path


def test_gpu_decode_reads_only_plain_jpegs_as_bytes(tmp_path: Path, image_dir: Path) -> None:
    """The decode-thread half of nvJPEG decoding runs anywhere; what it refuses goes to Pillow."""
    decoder = GpuJpegDecoder(torch.device("cpu"), 64, exif_transpose=True, max_pixels=10_000, io_module=None)
    plain = _jpeg(tmp_path / "plain.jpg")
    encoded = decoder.encoded(str(plain))
    assert isinstance(encoded, EncodedJpeg) and bytes(encoded.data.numpy()) == plain.read_bytes()
    assert isinstance(decoder.encoded(plain.read_bytes()), EncodedJpeg)
    assert isinstance(decoder.encoded(_jpeg(tmp_path / "grey.jpg", mode="L")), EncodedJpeg)
    refused = [next(image_dir.glob("*.png")), _jpeg(tmp_path / "cmyk.jpg", mode="CMYK"),
               _jpeg(tmp_path / "turned.jpg", orientation=6), _jpeg(tmp_path / "big.jpg", size=(200, 100)),
               tmp_path / "missing.jpg", Image.open(plain)]
    assert [decoder.encoded(s if isinstance(s, Image.Image) else str(s)) for s in refused] == [None] * len(refused)
    no_exif = GpuJpegDecoder(torch.device("cpu"), 64, exif_transpose=False, max_pixels=10_000, io_module=None)
    assert isinstance(no_exif.encoded(str(tmp_path / "turned.jpg")), EncodedJpeg)


class _PillowAsNvjpeg:
    """torchvision.io's decode_jpeg, played by Pillow on the CPU, failing like nvJPEG on a bad file."""

    class ImageReadMode:
        RGB = "RGB"

    calls = 0

    def decode_jpeg(self, data, mode, device):  # type: ignore[no-untyped-def]
        self.calls += 1
        if isinstance(data, list):
            return [self.decode_jpeg(d, mode, device) for d in data]
        img = Image.open(io.BytesIO(bytes(data.numpy()))).convert(mode)
        img.load()
        return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).to(device)


def test_gpu_decode_path_with_per_image_fallback(tiny_files, image_dir: Path, tmp_path: Path) -> None:
    """The engine's batch half, on the CPU with a stand-in decoder: JPEGs go through it, a file it
    cannot decode falls back to Pillow (and its error), the rest is Pillow as usual; the
    antialiased bilinear resize stays close to Pillow's."""
    engine = TaggingEngine.from_config(tiny_files.engine_config(batch_size=8))
    fake = _PillowAsNvjpeg()
    engine._gpu_decoder = GpuJpegDecoder(engine.device, engine.image_size, exif_transpose=True,
                                         max_pixels=engine.config.max_image_pixels, io_module=fake)
    broken = tmp_path / "broken.jpg"
    data = _jpeg(tmp_path / "ok.jpg").read_bytes()
    broken.write_bytes(data[:len(data) // 2])  # the header reads, the pixels do not
    sources = [*_paths(image_dir), str(broken), str(tmp_path / "ok.jpg")]
    reference = TaggingEngine.from_config(tiny_files.engine_config(batch_size=8)).predict(sources)
    results = engine.predict(sources)
    assert fake.calls >= 1
    assert [r.ok for r in results] == [r.ok for r in reference] and not results[-2].ok
    for got, want in zip(results, reference):
        if got.ok:
            assert np.abs(got.probs - want.probs).max() < 0.05


def test_gpu_decode_on_the_cpu_warns_and_uses_pillow(tiny_files, image_dir: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ram_model.inference.gpu_decode"):
        engine = TaggingEngine.from_config(tiny_files.engine_config(gpu_decode=True))
    assert "needs a CUDA device" in caplog.text
    assert engine.info()["gpu_decode"] is False
    paths = _paths(image_dir)
    plain = TaggingEngine.from_config(tiny_files.engine_config())
    np.testing.assert_array_equal(engine.predict_proba(paths), plain.predict_proba(paths))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_decode_on_cuda_matches_pillow(tiny_files, image_dir: Path) -> None:
    paths = [p for p in _paths(image_dir) if p.endswith(".jpg")]
    gpu = TaggingEngine.from_config(tiny_files.engine_config(device="cuda", gpu_decode=True, precision="fp32"))
    cpu = TaggingEngine.from_config(tiny_files.engine_config(device="cuda", precision="fp32"))
    np.testing.assert_allclose(gpu.predict_proba(paths), cpu.predict_proba(paths), atol=0.05)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where nvJPEG cannot run")
def test_gpu_decoder_that_cannot_run_is_refused_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """No CUDA here, and often no torchvision that imports: either way, Pillow and one warning."""
    with caplog.at_level(logging.WARNING, logger="ram_model.inference.gpu_decode"):
        decoder = GpuJpegDecoder.create(torch.device("cuda"), 64, exif_transpose=True, max_pixels=10**8)
    assert decoder is None
    assert "torchvision cannot decode JPEGs" in caplog.text and "decoding with Pillow" in caplog.text


def test_fast_jpeg_decode_scales_only_large_jpegs_and_stays_close(tiny_files, tmp_path: Path) -> None:
    """Reduced-scale decoding (opt-in): a JPEG >= 2x the input size on both sides decodes smaller but
    never below the input size; small JPEGs and PNGs decode exactly as without it; scores stay close."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:768, 0:1024]
    smooth = np.stack([(xx / 4) % 256, (yy / 3) % 256, ((xx + yy) / 7) % 256], -1)
    pixels = np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)
    large = tmp_path / "large.jpg"
    Image.fromarray(pixels).save(large, quality=90)
    small = _jpeg(tmp_path / "small.jpg", size=(96, 72))
    png = tmp_path / "large.png"
    Image.fromarray(pixels).save(png)

    exact = TaggingEngine.from_config(tiny_files.engine_config())
    fast = TaggingEngine.from_config(tiny_files.engine_config(fast_jpeg_decode=True))
    size = exact.image_size
    drafted = load_image(large, draft_size=size)
    assert drafted.size != (1024, 768) and min(drafted.size) >= size
    assert load_image(small, draft_size=size).tobytes() == load_image(small).tobytes()
    assert load_image(png, draft_size=size).tobytes() == load_image(png).tobytes()

    sources = [str(large), str(small), str(png)]
    a, b = exact.predict(sources), fast.predict(sources)
    assert all(r.ok for r in a + b) and fast.info()["fast_jpeg_decode"] is True
    np.testing.assert_array_equal(a[1].probs, b[1].probs)
    np.testing.assert_array_equal(a[2].probs, b[2].probs)
    assert not np.array_equal(a[0].probs, b[0].probs)  # the large JPEG really was decoded differently
    np.testing.assert_allclose(a[0].probs, b[0].probs, atol=0.05)
