"""Finetune export: records, atomic write, validating reader, round trip."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ram_model.review import (
    FinetuneFormatError,
    FinetuneRecord,
    UnmappedLabelError,
    atomic_write_json,
    atomic_write_text,
    build_finetune_records,
    build_label_mapping,
    read_finetune_json,
    write_finetune_json,
)

RAM = ["dog", "cat", "grass", "frisbee", "person", "tree"]


@pytest.fixture
def images(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg", "sub/c.jpg", "d.jpg"):
        (root / name).write_bytes(b"\xff\xd8 not decoded by the exporter")
    return root


@pytest.fixture
def mapping():  # type: ignore[no-untyped-def]
    return build_label_mapping(["Dog", "Grass", "Frisbees", "people", "unicorn"], RAM)


ITEMS = [
    ("a.jpg", ["Dog", "Grass"], None),
    ("b.jpg", ["Frisbees", "Dog", "unicorn"], ["A dog catches a frisbee.", "Frisbees in the air"]),
    ("sub/c.jpg", ["people"], [""]),
    ("d.jpg", ["unicorn"], None),
]


class TestBuildRecords:
    def test_records_and_report(self, mapping) -> None:  # type: ignore[no-untyped-def]
        records, report = build_finetune_records(ITEMS, mapping)
        assert records == [
            FinetuneRecord("a.jpg", ["dog, grass"], [0, 2], [[0, 2]]),
            FinetuneRecord("b.jpg", ["A dog catches a frisbee.", "Frisbees in the air"], [0, 3], [[0, 3], [3]]),
            FinetuneRecord("sub/c.jpg", ["person"], [4], [[4]]),
        ]
        assert report.exported == 3
        assert report.skipped_labels == {"unicorn": 2}
        assert report.skipped_images == [("d.jpg", "no label with a RAM tag")]
        assert report.synthetic_captions == 2
        json.dumps(report.to_dict())

    def test_fail_on_unmapped_lists_labels_and_images(self, mapping) -> None:  # type: ignore[no-untyped-def]
        with pytest.raises(UnmappedLabelError, match=r"\['unicorn'\].*b\.jpg.*on_unmapped='skip'") as info:
            build_finetune_records(ITEMS, mapping, on_unmapped="fail")
        assert info.value.labels == ("unicorn",)

    def test_labels_outside_the_project_count_as_unmapped(self, mapping) -> None:  # type: ignore[no-untyped-def]
        _, report = build_finetune_records([("a.jpg", ["Dog", "horse"], None)], mapping)
        assert report.skipped_labels == {"horse": 1}

    def test_duplicate_labels_collapse(self) -> None:
        mapping = build_label_mapping(["dog", "puppy"], RAM, synonyms={"puppy": "dog"})
        records, _ = build_finetune_records([("a.jpg", ["dog", "puppy"], None)], mapping)
        assert records[0].union_label_id == [0]


class TestRoundTrip:
    def test_write_then_read_gives_the_same_records(self, mapping, images: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        records, _ = build_finetune_records(ITEMS, mapping)
        out = write_finetune_json(records, tmp_path / "ft.json", image_root=images, num_classes=len(RAM))
        assert read_finetune_json(out, num_classes=len(RAM), image_root=images) == records
        raw = json.loads(out.read_text())
        assert set(raw[0]) == {"image_path", "caption", "union_label_id", "parse_label_id"}

    def test_absolute_paths_inside_root_become_relative(self, images: Path, tmp_path: Path) -> None:
        record = FinetuneRecord(str(images / "sub" / "c.jpg"), ["dog"], [0], [[0]])
        out = write_finetune_json([record], tmp_path / "ft.json", image_root=images)
        assert json.loads(out.read_text())[0]["image_path"] == "sub/c.jpg"

    def test_absolute_path_outside_root_is_refused(self, images: Path, tmp_path: Path) -> None:
        stray = tmp_path / "elsewhere.jpg"
        stray.write_bytes(b"x")
        with pytest.raises(FinetuneFormatError, match="outside image_root"):
            write_finetune_json(
                [FinetuneRecord(str(stray), ["dog"], [0], [[0]])], tmp_path / "ft.json", image_root=images
            )

    def test_invalid_record_writes_nothing_and_keeps_old_file(self, images: Path, tmp_path: Path) -> None:
        target = tmp_path / "ft.json"
        target.write_text("[]")
        bad = [FinetuneRecord("a.jpg", ["dog"], [0], [[0]]), FinetuneRecord("b.jpg", ["dog"], [], [[]])]
        with pytest.raises(FinetuneFormatError, match=r"entry 1 \(image_path='b.jpg'\).*empty"):
            write_finetune_json(bad, target, image_root=images)
        assert target.read_text() == "[]"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["ft.json", "images"]

    def test_reader_default_root_is_the_json_folder(self, images: Path) -> None:
        out = write_finetune_json([FinetuneRecord("a.jpg", ["dog"], [0], [[0]])], images / "ft.json")
        assert read_finetune_json(out, num_classes=len(RAM))[0].image_path == "a.jpg"


def _write_entries(path: Path, entries: object) -> Path:
    path.write_text(json.dumps(entries))
    return path


GOOD = {"image_path": "a.jpg", "caption": ["a dog"], "union_label_id": [0], "parse_label_id": [[0]]}


class TestReaderErrors:
    @pytest.mark.parametrize(
        "change, message",
        [
            ({"union_label_id": [0, 99]}, "unknown class id 99"),
            ({"union_label_id": [-1]}, "unknown class id -1"),
            ({"union_label_id": []}, "union_label_id is empty"),
            ({"union_label_id": ["0"]}, "must be integers"),
            ({"caption": "a dog"}, "caption must be a non-empty list"),
            ({"caption": []}, "caption must be a non-empty list"),
            ({"parse_label_id": [[0], [0]]}, "one id list per caption"),
            ({"parse_label_id": [[7]]}, r"parse_label_id\[0\] holds unknown class id 7"),
            ({"image_path": "missing.jpg"}, "image file not found"),
        ],
    )
    def test_entry_errors_name_index_and_path(self, images: Path, change: dict, message: str) -> None:
        entry = {**GOOD, **change}
        path = _write_entries(images / "ft.json", [GOOD, entry])
        with pytest.raises(FinetuneFormatError, match=message) as info:
            read_finetune_json(path, num_classes=len(RAM))
        assert info.value.index == 1
        assert f"entry 1 (image_path={entry['image_path']!r})" in str(info.value)

    def test_missing_keys_and_non_objects(self, images: Path) -> None:
        with pytest.raises(FinetuneFormatError, match=r"missing key\(s\) \['parse_label_id'\]"):
            read_finetune_json(
                _write_entries(images / "ft.json", [{k: v for k, v in GOOD.items() if k != "parse_label_id"}]),
                num_classes=6,
            )
        with pytest.raises(FinetuneFormatError, match="entry 0: must be an object"):
            read_finetune_json(_write_entries(images / "ft.json", [3]), num_classes=6)

    def test_file_level_errors(self, tmp_path: Path) -> None:
        (tmp_path / "bad.json").write_text("{not json")
        with pytest.raises(FinetuneFormatError, match="not valid JSON"):
            read_finetune_json(tmp_path / "bad.json", num_classes=6)
        with pytest.raises(FinetuneFormatError, match="JSON list"):
            read_finetune_json(_write_entries(tmp_path / "obj.json", {"a": 1}), num_classes=6)
        with pytest.raises(FileNotFoundError, match="finetune file not found"):
            read_finetune_json(tmp_path / "nope.json", num_classes=6)

    def test_check_files_off_skips_existence(self, tmp_path: Path) -> None:
        path = _write_entries(tmp_path / "ft.json", [{**GOOD, "image_path": "elsewhere/x.jpg"}])
        assert read_finetune_json(path, num_classes=6, check_files=False)[0].image_path == "elsewhere/x.jpg"


class TestAtomicWrite:
    def test_replaces_content_with_normal_permissions(self, tmp_path: Path) -> None:
        target = tmp_path / "x.json"
        atomic_write_json(target, {"a": 1})
        atomic_write_json(target, {"a": 2})
        assert json.loads(target.read_text()) == {"a": 2}
        umask = os.umask(0)
        os.umask(umask)
        assert target.stat().st_mode & 0o777 == 0o666 & ~umask
        assert [p.name for p in tmp_path.iterdir()] == ["x.json"]

    def test_unserialisable_data_leaves_old_file(self, tmp_path: Path) -> None:
        target = tmp_path / "x.json"
        target.write_text("old")
        with pytest.raises(TypeError):
            atomic_write_json(target, {"a": object()})
        with pytest.raises(ValueError):
            atomic_write_json(target, {"a": float("nan")})
        assert target.read_text() == "old"

    def test_crash_during_write_leaves_old_file_and_no_temp(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        target = tmp_path / "x.txt"
        target.write_text("old")

        def failing_replace(src: object, dst: object) -> None:
            raise OSError("disk full")

        monkeypatch.setattr(os, "replace", failing_replace)
        with pytest.raises(OSError, match="disk full"):
            atomic_write_text(target, "new")
        monkeypatch.undo()
        assert target.read_text() == "old"
        assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]

    def test_clear_errors_for_bad_targets(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match="does not exist"):
            atomic_write_text(tmp_path / "no" / "x.txt", "a")
        with pytest.raises(IsADirectoryError):
            atomic_write_text(tmp_path, "a")
