"""Grounded detection + segmentation (ram_model.grounding, `ram-annotate detect`) on tiny random models.

Every model here is built on the spot (random:tiny RAM, detector, segmenter), fp32; nothing is
downloaded. Boxes of random weights mean nothing, so the tests check structure, mapping,
resume and bad input, and the maths (NMS, RLE) against brute-force references.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("transformers")

from ram_model.cli.main import main  # noqa: E402
from ram_model.grounding import box_iou, decode_rle, encode_rle, nms  # noqa: E402

RANDOM_FLAGS = ["--checkpoint", "random:tiny", "--precision", "fp32", "--device", "cpu",
                "--detector", "random:tiny", "--no-progress"]


def _brute_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    def one_iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept: list[int] = []
    for i in order:
        if all(one_iou(boxes[i], boxes[k]) <= iou for k in kept):
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed", range(5))
def test_nms_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 60
    xy = rng.uniform(0, 0.8, (n, 2))
    wh = rng.uniform(0.02, 0.4, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    boxes[:10] = boxes[10:20] + rng.normal(0, 0.01, (10, 4))  # near-duplicates that must be suppressed
    scores = rng.uniform(0, 1, n)
    scores[5] = scores[6]  # a tie keeps input order
    got = nms(torch.tensor(boxes, dtype=torch.float64), torch.tensor(scores), 0.5).tolist()
    assert got == _brute_nms(boxes, scores, 0.5)
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []


def test_box_iou_of_degenerate_boxes_is_zero() -> None:
    a = torch.tensor([[0.2, 0.2, 0.2, 0.5], [0.0, 0.0, 1.0, 1.0]])
    iou = box_iou(a, a)
    assert iou[0, 0] == 0 and iou[1, 1] == 1 and not torch.isnan(iou).any()


def test_rle_round_trip_and_coco_order() -> None:
    rng = np.random.default_rng(0)
    for shape in [(7, 5), (1, 1), (30, 40)]:
        mask = rng.random(shape) > 0.6
        rle = encode_rle(mask)
        assert rle["size"] == list(shape) and sum(rle["counts"]) == mask.size
        assert np.array_equal(decode_rle(rle), mask)
    # Column-major, starting with zeros: a mask whose first pixel is set starts with a 0 run.
    m = np.array([[1, 0], [1, 1]], dtype=bool)
    assert encode_rle(m)["counts"] == [0, 2, 1, 1]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (90 + 10 * i, 120, 3), dtype=np.uint8)).save(folder / f"im{i}.png")
    return folder


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_detect_end_to_end_with_masks_and_resume(images: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "det.jsonl"
    argv = ["detect", str(images), *RANDOM_FLAGS, "--segmenter", "random:tiny", "--top-k", "4",
            "--output", str(out)]
    assert main(argv) == 0
    rows = _rows(out)
    assert len(rows) == 3 and all(r["error"] is None for r in rows)
    assert all(r["random_weights"] and r["model_version"].startswith("random-") for r in rows)
    assert any(r["detections"] for r in rows)
    for r in rows:
        for d in r["detections"]:
            assert d["label"] in r["tags"]  # each box maps back to one fired tag
            x0, y0, x1, y1 = d["box"]
            assert 0 <= x0 <= x1 <= 1 and 0 <= y0 <= y1 <= 1 and 0 <= d["score"] <= 1
            assert d["mask"]["size"] == [r["height"], r["width"]]
            assert decode_rle(d["mask"]).shape == (r["height"], r["width"])
        scores = [d["score"] for d in r["detections"]]
        assert scores == sorted(scores, reverse=True)
    assert "random weights" in capsys.readouterr().err
    # Resume: nothing is redone, the file is unchanged.
    before = out.read_text()
    assert main(argv) == 0
    assert out.read_text() == before
    # Other thresholds into the same file: refused, nothing lost.
    assert main(argv + ["--box-threshold", "0.9"]) == 2
    assert out.read_text() == before


def test_detect_bad_input(images: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "corrupt.jpg").write_bytes(b"not a jpeg")
    Image.new("1", (10_000, 9_000)).save(tmp_path / "bomb.png")  # 90 Mpx: over the pixel limit
    out = tmp_path / "bad.jsonl"
    argv = ["detect", str(images / "im0.png"), str(tmp_path / "corrupt.jpg"), str(tmp_path / "bomb.png"),
            str(tmp_path / "missing.png"), *RANDOM_FLAGS, "--output", str(out)]
    assert main(argv) == 0
    rows = {Path(r["path"]).name: r for r in _rows(out)}
    assert rows["im0.png"]["error"] is None
    assert "decompression bomb" in rows["bomb.png"]["error"]
    assert "not a recognised image" in rows["corrupt.jpg"]["error"]
    assert "not found" in rows["missing.png"]["error"]
    assert all(r["detections"] == [] for n, r in rows.items() if n != "im0.png")
    # An empty image list is one line and exit 2.
    assert main(["detect", str(tmp_path / "nothing-*.png"), *RANDOM_FLAGS]) == 2
    assert "no image files" in capsys.readouterr().err


def test_no_tag_fired_means_no_detections(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "none.jsonl"
    assert main(["detect", str(images), *RANDOM_FLAGS, "--threshold", "1.0", "--output", str(out)]) == 0
    rows = _rows(out)
    assert len(rows) == 3 and all(r["tags"] == [] and r["detections"] == [] and r["error"] is None for r in rows)


def test_owlv2_and_label_mapping() -> None:
    from ram_model import EngineConfig, TaggingEngine, ThresholdPolicy
    from ram_model.grounding import GroundedLabeler, load_detector

    engine = TaggingEngine.from_config(EngineConfig(checkpoint="random:tiny", precision="fp32", device="cpu"))
    detector = load_detector("random:tiny-owlv2", words=engine.vocab.names, box_threshold=0.0)
    labeler = GroundedLabeler(engine, detector, policy=ThresholdPolicy(threshold=0.0, top_k=6))
    picture = Image.fromarray(np.random.default_rng(2).integers(0, 256, (80, 160, 3), dtype=np.uint8))
    (plain,) = labeler.run([picture])
    assert plain.detections and {d.label for d in plain.detections} <= {t.name for t in plain.tags}
    # A project mapping: only mapped tags are prompted, and boxes carry the project's label.
    mapped_tag = plain.tags[0].name
    (mapped,) = labeler.run([picture], labels={mapped_tag: "Thing"})
    assert {d.label for d in mapped.detections} <= {"Thing"}
    (nothing,) = labeler.run([picture], labels={"no-such-tag": "X"})
    assert nothing.detections == [] and nothing.error is None


def test_uncached_repo_is_one_line_naming_hf_download(monkeypatch, tmp_path: Path) -> None:
    from ram_model import CheckpointNotFoundError
    from ram_model.grounding import load_detector, load_segmenter

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointNotFoundError) as e:
        load_detector("grounding-dino-tiny", cache_dir=str(tmp_path))
    assert "hf download IDEA-Research/grounding-dino-tiny" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(CheckpointNotFoundError) as e:
        load_segmenter("sam", cache_dir=str(tmp_path))
    assert "hf download facebook/sam-vit-base" in str(e.value)


def test_saved_folders_load_through_the_real_path(tmp_path: Path) -> None:
    """`save_pretrained` folders load with the same code as cached repos (model type read from the config)."""
    from ram_model.grounding import load_detector, load_segmenter
    from ram_model.grounding.tiny import tiny_grounding_dino, tiny_sam

    model, tokenizer, processor = tiny_grounding_dino(["dog", "cat"])
    for part in (model, tokenizer, processor):
        part.save_pretrained(tmp_path / "gd")
    sam, sam_processor = tiny_sam()
    sam.save_pretrained(tmp_path / "sam")
    sam_processor.save_pretrained(tmp_path / "sam")
    detector = load_detector(str(tmp_path / "gd"))
    segmenter = load_segmenter(str(tmp_path / "sam"))
    assert detector.family == "grounding-dino" and not detector.random_weights
    picture = Image.new("RGB", (64, 48), "white")
    (dets,) = detector.detect([picture], [["dog", "cat"]])
    assert {d.label for d in dets} <= {"dog", "cat"}
    (masks,) = segmenter.segment([picture], [np.array([[0.1, 0.1, 0.5, 0.9]], dtype=np.float32)])
    assert len(masks) == 1 and masks[0].shape == (48, 64)


def test_bad_detector_values_are_one_line(tmp_path: Path, images: Path, capsys) -> None:
    from ram_model import ConfigError
    from ram_model.grounding import load_detector, load_segmenter

    with pytest.raises(ConfigError, match="random presets"):
        load_detector("random:huge")
    with pytest.raises(ConfigError, match="holds no transformers model"):
        load_detector(str(tmp_path))
    with pytest.raises(ConfigError, match="random preset is random:tiny"):
        load_segmenter("random:tiny-owlv2")
    argv = ["detect", str(images), *RANDOM_FLAGS[:-3], "--detector", "random:huge", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: --detector 'random:huge'")
