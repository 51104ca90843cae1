"""Export finetuning data through FiftyOne's operator execution; the files are read back and checked."""
from __future__ import annotations

# ruff: noqa: I001  (fo_fixtures must be imported before fiftyone: it sets FiftyOne's config)

import json
from pathlib import Path
from urllib.parse import unquote

import fo_fixtures as fx
import pytest

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators.executor import ExecutionRunState
from ram_model import TagVocabulary
from ram_model.review import read_finetune_json

pytestmark = pytest.mark.fiftyone

# "Dogs" maps to RAM's "dog" (plural), "street_sign" to "street sign" (separators), "unicorn" to nothing.
LABELS = [["Dogs", "cat"], ["street_sign"], None, ["unicorn"], ["tree", "unicorn", "Dogs"], ["car"]]
RAM_NAME = {"Dogs": "dog", "cat": "cat", "street_sign": "street sign", "tree": "tree", "car": "car"}


@pytest.fixture(scope="module")
def thresholds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fx.write_thresholds(tmp_path_factory.mktemp("thr") / "t.txt", {"dog": 0.0, "tree": 0.0})


@pytest.fixture(scope="module")
def model(tiny_files, thresholds) -> dict[str, str]:
    return fx.model_params(tiny_files, thresholds=thresholds)


@pytest.fixture(scope="module")
def vocab(tiny_files) -> TagVocabulary:
    return TagVocabulary.from_files(tiny_files.tag_list, tiny_files.tag_list_zh, tiny_files.thresholds)


@pytest.fixture()
def dataset(request, tmp_path) -> fo.Dataset:
    images = fx.write_images(tmp_path / "images" / "nested", len(LABELS), seed=7)
    ds = fx.make_dataset(f"exp-{request.node.name}"[:60], images, labels=LABELS)
    yield ds
    ds.delete()


def _export(dataset: fo.Dataset, model: dict, out: Path, **params) -> dict:
    return foo.execute_operator(fx.EXPORT_URI, {"dataset": dataset.name, "params": {
        **model, "label_field": "ground_truth", "output_dir": str(out), **params}}).result


def _labelled_with_ram_tags(dataset: fo.Dataset) -> list[tuple[str, str, set[str]]]:
    """(sample id, filepath, expected RAM names) of the samples the export should contain."""
    out = []
    for sample, labels in zip(dataset, LABELS):
        names = {RAM_NAME[label] for label in labels or [] if label in RAM_NAME}
        if names:
            out.append((sample.id, sample.filepath, names))
    return out


def _check_finetune(path: Path, vocab: TagVocabulary, expected, image_root: Path) -> list:
    records = read_finetune_json(path, num_classes=len(vocab), image_root=image_root)
    assert len(records) == len(expected)
    for record, (_, _, names) in zip(records, expected):
        assert {vocab.names[i] for i in record.union_label_id} == names
        assert record.parse_label_id == [record.union_label_id]
        assert record.caption == [", ".join(vocab.names[i] for i in record.union_label_id)]
    return records


def test_copy_images_export_maps_every_id_to_the_right_tag(dataset, model, vocab, tmp_path) -> None:
    fo_tag = foo.execute_operator(fx.TAG_URI, {"dataset": dataset.name, "params": {**model, "field": "ram"}})
    out = tmp_path / "export"
    result = _export(dataset, model, out, copy_images=True)
    expected = _labelled_with_ram_tags(dataset)
    assert (result["records"], result["skipped_unlabeled"], result["skipped_no_mapped_label"]) == (4, 1, 1)
    assert result["unmapped_labels"] == ["unicorn"]
    records = _check_finetune(out / "ram_finetune.json", vocab, expected, out)
    for record, (sample_id, source, _) in zip(records, expected):
        assert record.image_path == f"images/{sample_id}.jpg"
        assert (out / record.image_path).read_bytes() == Path(source).read_bytes()

    tasks = json.loads((out / "label_studio_tasks.json").read_text())
    assert [t["data"]["ram_sample_id"] for t in tasks] == [sid for sid, _, _ in expected]
    model_version = fo_tag.result["model_version"]
    reviewed = dict(zip(*dataset.values(["id", "ground_truth.classifications.label"])))
    for task, record in zip(tasks, records):
        # The reviewed labels travel as the task's annotation, not only RAM's prediction.
        (annotation,) = task["annotations"]
        (chosen,) = annotation["result"]
        assert chosen["value"]["choices"] == sorted(set(reviewed[task["data"]["ram_sample_id"]]))
        assert unquote(task["data"]["image"]) == f"/data/local-files/?d={record.image_path}"
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == model_version
        (choices,) = prediction["result"]
        assert (choices["from_name"], choices["to_name"], choices["type"]) == ("tags", "image", "choices")
        # RAM fired dog and tree everywhere; they appear under the project's names ("Dogs" for dog).
        assert set(choices["value"]["choices"]) == {"Dogs", "tree"}
    # The one hidden entry is the generation store: the current export, no staging left behind.
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [".ram-export"]
    store = sorted(p.name for p in (out / ".ram-export").iterdir())
    assert len(store) == 3 and store[0] == "current" and store[1].startswith("gen-") and store[2] == "lock", store


def test_export_in_place_points_at_the_original_images(dataset, model, vocab, tmp_path) -> None:
    out = tmp_path / "json_only"
    result = _export(dataset, model, out, ram_field="")
    expected = _labelled_with_ram_tags(dataset)
    records = _check_finetune(out / "ram_finetune.json", vocab, expected, out)
    assert [r.image_path for r in records] == [path for _, path, _ in expected]
    tasks = json.loads((out / "label_studio_tasks.json").read_text())
    root = Path(expected[0][1]).parent
    assert all(t["predictions"] == [] for t in tasks)
    assert [str(root / unquote(t["data"]["image"]).split("?d=")[1]) for t in tasks] == [p for _, p, _ in expected]
    assert result["image_root"] is None and not (out / "images").exists()


def test_missing_media_is_skipped_and_listed(dataset, model, vocab, tmp_path) -> None:
    gone = dataset.values("filepath")[0]
    Path(gone).unlink()
    result = _export(dataset, model, tmp_path / "out")
    assert result["skipped_missing_media"] == 1 and result["missing_media"] == [gone]
    records = read_finetune_json(tmp_path / "out" / "ram_finetune.json", num_classes=len(vocab))
    assert gone not in [r.image_path for r in records] and len(records) == 3


def test_unmapped_labels_can_fail_the_export_and_nothing_is_written(dataset, model, tmp_path) -> None:
    out = tmp_path / "strict"
    fx.assert_failed(_export(dataset, model, out, on_unmapped="fail"), "unicorn")
    assert not out.exists()


def test_failure_halfway_leaves_the_previous_export_untouched(dataset, model, tmp_path) -> None:
    out = tmp_path / "export"
    _export(dataset, model, out, copy_images=True)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    dataset.set_values("ground_truth", [fo.Classifications(classifications=[fo.Classification(label="cat")])]
                       * len(dataset))
    # Images are copied into staging, then the task paths cannot be made relative: the job fails late.
    fx.assert_failed(_export(dataset, model, out, copy_images=True, overwrite=True,
                             ls_document_root=str(tmp_path / "elsewhere")), "outside the Label Studio document root")
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_existing_export_needs_overwrite(dataset, model, tmp_path) -> None:
    out = tmp_path / "export"
    _export(dataset, model, out)
    fx.assert_failed(_export(dataset, model, out), "already exist")
    _export(dataset, model, out, overwrite=True)


def test_zero_samples_is_a_clear_error(dataset, model, tmp_path) -> None:
    empty = dataset.limit(0)
    fx.assert_failed(foo.execute_operator(fx.EXPORT_URI, {"view": empty, "params": {
        **model, "label_field": "ground_truth", "output_dir": str(tmp_path / "o"), "view_target": "CURRENT_VIEW"}}
    ).result, "no samples")
    assert not (tmp_path / "o").exists()


def test_delegated_export(dataset, model, vocab, tmp_path) -> None:
    out = tmp_path / "delegated"
    operation = fx.run_delegated(fx.EXPORT_URI, dataset, {**model, "label_field": "ground_truth",
                                                          "output_dir": str(out)})
    assert operation.run_state == ExecutionRunState.COMPLETED, operation.result
    _check_finetune(out / "ram_finetune.json", vocab, _labelled_with_ram_tags(dataset), out)


def test_without_an_output_folder_the_json_goes_to_the_work_folder_not_the_photos(
        dataset, model, vocab, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RAM_ANNOTATE_WORK_DIR", str(tmp_path / "work"))
    result = foo.execute_operator(fx.EXPORT_URI, {"dataset": dataset.name, "params": {
        **model, "label_field": "ground_truth"}}).result
    photos = Path(dataset.first().filepath).parent
    folder = Path(result["output_dir"])
    assert folder.parent == (tmp_path / "work" / "exports").resolve() and folder.name.startswith(photos.name + "-")
    assert not (photos / "ram_finetune.json").exists() and not (photos / "label_studio_tasks.json").exists()
    assert result["finetune_json"] == str(folder / "ram_finetune.json")
    assert any("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT" in w for w in result["warnings"]), result
    _check_finetune(folder / "ram_finetune.json", vocab, _labelled_with_ram_tags(dataset), folder)
    tasks = json.loads((folder / "label_studio_tasks.json").read_text())
    assert [unquote(t["data"]["image"]) for t in tasks] == [
        f"/data/local-files/?d={Path(p).name}" for _, p, _ in _labelled_with_ram_tags(dataset)]


def test_export_takes_the_vocabulary_from_the_tag_run_and_never_loads_the_model(dataset, model, vocab,
                                                                                 tmp_path) -> None:
    foo.execute_operator(fx.TAG_URI, {"dataset": dataset.name, "params": {**model, "field": "ram"}})
    out = tmp_path / "no_model"
    # No tag list and a checkpoint that does not exist: only the tag run can supply the 48 tiny tags.
    result = foo.execute_operator(fx.EXPORT_URI, {"dataset": dataset.name, "params": {
        "checkpoint": str(tmp_path / "absent.pth"), "label_field": "ground_truth", "output_dir": str(out)}}).result
    assert result["records"] == 4
    _check_finetune(out / "ram_finetune.json", vocab, _labelled_with_ram_tags(dataset), out)


def test_images_the_tag_run_could_not_read_are_left_out(dataset, model, vocab, tmp_path) -> None:
    broken = dataset.values("filepath")[0]  # labelled "Dogs", "cat"
    Path(broken).write_bytes(b"not an image")
    tagged = foo.execute_operator(fx.TAG_URI, {"dataset": dataset.name, "params": {**model, "field": "ram"}}).result
    assert tagged["failed"] == 1
    result = _export(dataset, model, tmp_path / "out")
    assert (result["skipped_unreadable"], result["unreadable"], result["records"]) == (1, [broken], 3)
    records = read_finetune_json(tmp_path / "out" / "ram_finetune.json", num_classes=len(vocab))
    assert broken not in [r.image_path for r in records]


def _whole_export(out: Path, dataset: fo.Dataset, vocab: TagVocabulary) -> list[tuple[str, set[str]]]:
    """(sample id, RAM names) per record of the export a reader sees; fails unless it is whole."""
    records = read_finetune_json(out / "ram_finetune.json", num_classes=len(vocab), image_root=out)
    tasks = json.loads((out / "label_studio_tasks.json").read_text())
    source = {s.id: s.filepath for s in dataset}
    ids = [Path(r.image_path).stem for r in records]
    assert [t["data"]["ram_sample_id"] for t in tasks] == ids
    for record, sample_id in zip(records, ids):
        assert (out / record.image_path).read_bytes() == Path(source[sample_id]).read_bytes()
    assert sorted(p.stem for p in (out / "images").iterdir()) == sorted(ids)
    return [(i, {vocab.names[c] for c in r.union_label_id}) for i, r in zip(ids, records)]


@pytest.mark.parametrize("kill_at", ["image:3", "switched"])
def test_export_killed_with_sigkill_leaves_a_whole_export(kill_at, dataset, model, vocab, tmp_path) -> None:
    """The real command, killed by SIGKILL while copying images or right after the switch."""
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "export"
    _export(dataset, model, out, copy_images=True)
    old = _whole_export(out, dataset, vocab)
    dataset.set_values("ground_truth", [fo.Classifications(classifications=[fo.Classification(label="cat")])]
                       * len(dataset))
    flags = [a for k, v in model.items() for a in (f"--{k.replace('_', '-')}", v)]
    command = [sys.executable, "-m", "ram_model.cli", "fiftyone", "export", "--dataset", dataset.name,
               "--label-field", "ground_truth", "--out", str(out), "--copy-images", "--overwrite",
               "--no-progress", *flags]
    env = {**os.environ, "PYTHONPATH": str(fx.REPO_ROOT), "RAM_ANNOTATE_TEST_KILL_AT": kill_at}
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    new = [(s.id, {"cat"}) for s in dataset]
    assert _whole_export(out, dataset, vocab) == (new if kill_at == "switched" else old)
    _export(dataset, model, out, copy_images=True, overwrite=True)  # the next export clears the leftovers
    assert _whole_export(out, dataset, vocab) == new
    assert len(list((out / ".ram-export").iterdir())) == 3  # current, its generation, the lock
