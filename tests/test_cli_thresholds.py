"""`ram-annotate thresholds tune` end to end on the tiny checkpoint and generated images."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import make_image
from ram_model.cli.main import main
from ram_model.cli.thresholds import reviewed_label_matrix
from ram_model.review import FinetuneRecord, tune_thresholds, write_finetune_json
from ram_model.model.vocab import read_thresholds


def _model_args(files) -> list[str]:  # type: ignore[no-untyped-def]
    return ["--checkpoint", str(files.checkpoint), "--swin-config", str(files.swin_config),
            "--head-config", str(files.head_config), "--tag-list", str(files.tag_list),
            "--tag-list-zh", str(files.tag_list_zh), "--thresholds", str(files.thresholds),
            "--device", "cpu", "--precision", "fp32", "--batch-size", "4"]


def _record(name: str, ids: list[int]) -> FinetuneRecord:
    return FinetuneRecord(name, ["x"], ids, [ids])


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[FinetuneRecord]]]:
    """Two exports over one image folder: the first project uses classes 0-2, the second 2-3."""
    root = tmp_path_factory.mktemp("tune")
    for i in range(9):
        make_image(root / f"img{i}.png", seed=20 + i, size=(48, 40))
    (root / "broken.png").write_bytes(b"not an image")
    first = [_record(f"img{i}.png", ids) for i, ids in
             enumerate([[0], [0, 1], [1], [0, 2], [2], [0, 1, 2]])] + [_record("broken.png", [0])]
    second = [_record(f"img{i}.png", ids) for i, ids in [(6, [3]), (7, [2, 3]), (8, [2]), (0, [3])]]
    write_finetune_json(first, root / "a.json", image_root=root, num_classes=48)
    write_finetune_json(second, root / "b.json", image_root=root, num_classes=48)
    return root, [first, second]


def test_reviewed_matrix_uses_each_files_union() -> None:
    labels = reviewed_label_matrix([[_record("a", [0]), _record("b", [1])], [_record("c", [2])]], 4)
    np.testing.assert_array_equal(labels, [[1, 0, -1, -1], [0, 1, -1, -1], [-1, -1, 1, -1]])


def test_reviewed_label_id_overrides_the_union() -> None:
    if "reviewed_label_id" not in FinetuneRecord.__dataclass_fields__:
        pytest.skip("FinetuneRecord.reviewed_label_id arrives with the finetune branch")
    record = FinetuneRecord("a", ["x"], [0], [[0]], reviewed_label_id=[0, 3])  # type: ignore[call-arg]
    labels = reviewed_label_matrix([[record, _record("b", [1])]], 4)
    np.testing.assert_array_equal(labels, [[1, -1, -1, 0], [0, 1, -1, -1]])


def test_tune_writes_the_thresholds_the_library_computes(tiny_files, tiny_engine, export, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    root, files = export
    out = tmp_path / "tuned.txt"
    code = main(["thresholds", "tune", "--data", str(root / "a.json"), "--data", str(root / "b.json"),
                 "--image-root", str(root), "--output", str(out), "--min-count", "1", "--shrink", "0",
                 "--no-progress", *_model_args(tiny_files)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "1 of 11 images could not be read" in captured.err
    assert "10 images; 4 classes tuned" in captured.out and "44 kept their threshold" in captured.out

    # The same tuning done by hand on the engine's probabilities (the broken image left out).
    labels = reviewed_label_matrix(files, 48)
    keep = [i for i, r in enumerate(files[0] + files[1]) if r.image_path != "broken.png"]
    probs = tiny_engine.predict_proba([root / r.image_path for r in files[0] + files[1] if r.image_path != "broken.png"])
    expected = tune_thresholds(labels[keep], probs, prior=tiny_engine.vocab.thresholds, min_count=1, shrink=0)
    written = read_thresholds(out, 48)
    np.testing.assert_allclose(written, expected.thresholds, atol=1e-5)
    np.testing.assert_array_equal(written[4:], tiny_engine.vocab.thresholds[4:])

    report = json.loads((tmp_path / "tuned.txt.report.json").read_text())
    by_name = {c["name"]: c for c in report["classes"]}
    first = by_name[tiny_engine.vocab.names[0]]
    assert (first["positives"], first["negatives"]) == (4, 2)  # reviewed in a.json only; broken.png left out
    assert by_name[tiny_engine.vocab.names[3]]["negatives"] == 1  # 3 is reviewed in b.json only
    assert report["sources"] == {"tuned": 4, "shrunk": 0, "prior": 44}


def test_tune_refuses_to_overwrite_and_reports_bad_input(tiny_files, export, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = export
    out = tmp_path / "thresholds.txt"
    out.write_text("0.5\n")
    args = ["thresholds", "tune", "--data", str(root / "a.json"), "--output", str(out), "--no-progress",
            *_model_args(tiny_files)]
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_text() == "0.5\n"
    assert main([*args, "--overwrite", "--target", "precision"]) == 2
    assert "--min-precision" in capsys.readouterr().err

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_path": "img0.png", "caption": ["x"], "union_label_id": [99],
                                "parse_label_id": [[99]]}]))
    assert main(["thresholds", "tune", "--data", str(bad), "--image-root", str(root), "--output",
                 str(out), "--overwrite", "--no-progress", *_model_args(tiny_files)]) == 2
    assert "unknown class id 99" in capsys.readouterr().err and out.read_text() == "0.5\n"
