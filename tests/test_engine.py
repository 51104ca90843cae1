"""The engine: batched equals single, bad images are per-item errors, EXIF, embeddings, OOM retry."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ram_model import ImageLoadError, TaggingEngine
from ram_model.inference.images import load_image
from ram_model.model.preprocess import to_model_input

from conftest import make_image


def test_batched_equals_single(tiny_files, image_dir: Path) -> None:
    paths = sorted(str(p) for p in image_dir.rglob("*.*"))
    batched = TaggingEngine.from_config(tiny_files.engine_config(batch_size=4, decode_workers=2))
    single = TaggingEngine.from_config(tiny_files.engine_config(batch_size=1, decode_workers=0))
    a = batched.predict_proba(paths)
    b = np.stack([single.predict_proba([p])[0] for p in paths])
    assert a.shape == (len(paths), 48) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    assert np.ptp(a, axis=0).max() > 1e-3  # different images really give different outputs


def test_ram_variant_runs_and_differs_per_image(tiny_files_ram, image_dir: Path) -> None:
    engine = TaggingEngine.from_config(tiny_files_ram.engine_config())
    assert engine.variant == "ram"
    probs = engine.predict_proba(sorted(image_dir.glob("*.png")))
    assert probs.shape[1] == 48 and np.all((probs >= 0) & (probs <= 1))


def test_sources_of_every_kind_agree(tiny_engine: TaggingEngine, image_dir: Path) -> None:
    path = image_dir / "img0.png"
    data = path.read_bytes()
    img = Image.open(path)
    arr = np.asarray(img.convert("RGB"))
    probs = tiny_engine.predict_proba([path, str(path), data, img, arr])
    for row in probs[1:]:
        np.testing.assert_allclose(row, probs[0], atol=1e-6)


def test_bad_images_become_per_item_errors(tiny_engine: TaggingEngine, image_dir: Path, tmp_path: Path) -> None:
    good = image_dir / "img1.jpg"
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:300])
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    sixteen_bit = tmp_path / "depth.png"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint16)).save(sixteen_bit)
    huge = tmp_path / "bomb.png"
    Image.new("L", (5000, 5000)).save(huge)
    sources = [str(good), str(tmp_path / "missing.jpg"), str(truncated), str(corrupt), str(sixteen_bit),
               str(tmp_path), b"", str(good)]
    engine = TaggingEngine.from_config(
        tiny_engine.config.__class__(**{**tiny_engine.config.__dict__, "max_image_pixels": 4_000_000})
    )
    results = engine.predict(sources + [str(huge)])
    errors = [r.error for r in results]
    assert results[0].ok and results[7].ok
    np.testing.assert_allclose(results[0].probs, results[7].probs, atol=1e-6)  # different batch companions
    assert "not found" in errors[1]
    assert "cannot decode" in errors[2] or "truncated" in errors[2]
    assert errors[3] is not None
    assert results[4].ok  # 16-bit greyscale is scaled to 8 bits and tagged (issue 12, item 6)
    assert "directory" in errors[5]
    assert errors[6] is not None
    assert "decompression bomb" in errors[8]
    with pytest.raises(ImageLoadError):
        engine.predict_proba([str(good), str(corrupt)])


def test_exif_orientation_applied_by_default_and_switchable(tiny_files, tmp_path: Path) -> None:
    base = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 80, 3), dtype=np.uint8))
    exif = base.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    rotated_file = tmp_path / "exif.jpg"
    base.save(rotated_file, exif=exif, quality=95)
    assert load_image(rotated_file).size == (40, 80)
    assert load_image(rotated_file, exif_transpose=False).size == (80, 40)
    on = TaggingEngine.from_config(tiny_files.engine_config()).predict_proba([rotated_file])
    off = TaggingEngine.from_config(tiny_files.engine_config(exif_transpose=False)).predict_proba([rotated_file])
    assert np.abs(on - off).max() > 1e-4


def test_preprocess_matches_the_official_recipe(image_dir: Path) -> None:
    """RGB -> PIL bilinear resize to (S, S) -> [0, 1] -> ImageNet normalisation."""
    img = Image.open(image_dir / "img2.png").convert("RGB")
    ours = to_model_input(img, 64)
    ref = np.asarray(img.resize((64, 64), Image.BILINEAR), dtype=np.float32) / 255.0
    ref = (ref - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(ours.numpy(), ref.transpose(2, 0, 1), atol=1e-6)


def test_embedding_is_the_projected_pooled_token(tiny_engine: TaggingEngine, image_dir: Path) -> None:
    path = image_dir / "img3.jpg"
    (pred,) = tiny_engine.predict([path], with_embedding=True)
    x = to_model_input(load_image(path), tiny_engine.image_size).unsqueeze(0)
    with torch.no_grad():
        tokens = tiny_engine.model.image_proj(tiny_engine.model.visual_encoder(x))
    assert pred.embedding.shape == (512,)
    np.testing.assert_allclose(pred.embedding, tokens[0, 0].numpy(), atol=1e-5)
    assert tiny_engine.predict([path])[0].embedding is None


def test_progress_and_order(tiny_engine: TaggingEngine, image_dir: Path) -> None:
    paths = sorted(str(p) for p in image_dir.rglob("*.*"))
    seen: list[tuple[int, int]] = []
    results = tiny_engine.predict(paths, progress=lambda done, total: seen.append((done, total)))
    assert [r.source for r in results] == paths
    assert seen[-1] == (len(paths), len(paths))
    assert tiny_engine.predict([]) == []
    assert tiny_engine.predict_proba([]).shape == (0, 48)


def test_out_of_memory_halves_the_batch(tiny_files, image_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No GPU here: a model that raises CUDA's OOM above 2 images stands in for a full card."""
    engine = TaggingEngine.from_config(tiny_files.engine_config(batch_size=8))
    paths = sorted(str(p) for p in image_dir.rglob("*.*"))
    expected = engine.predict_proba(paths)
    real = engine.model.forward_with_embedding
    sizes: list[int] = []

    def limited(x: torch.Tensor, classes: torch.Tensor | None = None):
        sizes.append(x.shape[0])
        if x.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(x, classes)

    monkeypatch.setattr(engine.model, "forward_with_embedding", limited)
    np.testing.assert_allclose(engine.predict_proba(paths), expected, atol=1e-5)
    assert max(s for s in sizes if s <= 2) == 2 and 6 in sizes


def test_model_version_changes_with_thresholds_and_weights(tiny_files, tmp_path: Path) -> None:
    from ram_model.weights.testing import make_tiny_checkpoint

    base = TaggingEngine.from_config(tiny_files.engine_config())
    thr = tmp_path / "thr.txt"
    thr.write_text("\n".join(["0.5"] * 48))
    other_thresholds = TaggingEngine.from_config(tiny_files.engine_config(thresholds=str(thr)))
    other = make_tiny_checkpoint(tmp_path / "s7", seed=7)
    other_weights = TaggingEngine.from_config(other.engine_config())
    versions = {base.model_version, other_thresholds.model_version, other_weights.model_version}
    assert len(versions) == 3 and all(v.startswith("random-ram_plus-") for v in versions)
    assert base.info()["num_classes"] == 48 and base.info()["device"] == "cpu"


def test_bf16_autocast_on_cpu_stays_close(tiny_files, image_dir: Path) -> None:
    paths = sorted(str(p) for p in image_dir.glob("*.png"))
    fp32 = TaggingEngine.from_config(tiny_files.engine_config(precision="fp32")).predict_proba(paths)
    bf16_engine = TaggingEngine.from_config(tiny_files.engine_config(precision="bf16"))
    assert bf16_engine.info()["precision"] == "bfloat16"
    np.testing.assert_allclose(bf16_engine.predict_proba(paths), fp32, atol=0.05)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fp16_matches_cpu_fp32(tiny_files, image_dir: Path) -> None:
    paths = sorted(str(p) for p in image_dir.rglob("*.*"))
    cpu = TaggingEngine.from_config(tiny_files.engine_config(precision="fp32")).predict_proba(paths)
    for precision, tol in (("fp32", 1e-4), ("fp16", 1e-2), ("bf16", 5e-2)):
        gpu = TaggingEngine.from_config(tiny_files.engine_config(device="cuda", precision=precision))
        np.testing.assert_allclose(gpu.predict_proba(paths), cpu, atol=tol)
