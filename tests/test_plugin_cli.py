"""`ram-annotate fiftyone tag|disagreements|export|similarity`: the same jobs as the operators, from a shell."""
from __future__ import annotations

# ruff: noqa: I001  (fo_fixtures must be imported before fiftyone: it sets FiftyOne's config)

import json
from pathlib import Path

import fo_fixtures as fx
import pytest

import fiftyone as fo
from ram_model import TaggingEngine
from ram_model.cli.main import main
from ram_model.review import read_finetune_json
from ram_model.weights.testing import TINY_TAGS

pytestmark = pytest.mark.fiftyone


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return fx.write_images(tmp_path_factory.mktemp("cli_imgs"), 4, seed=2)


@pytest.fixture(scope="module")
def model_flags(tiny_files, images, tmp_path_factory) -> list[str]:
    """"dog" fires on every image, surely (odds >= 1000:1 after centring) but with a threshold the
    review core finds informative (not 0 or 1)."""
    probe = TaggingEngine.from_config(tiny_files.engine_config())
    dog = min(float(p.probs[TINY_TAGS.index("dog")]) for p in probe.predict([str(p) for p in images]))
    thresholds = fx.write_thresholds(tmp_path_factory.mktemp("thr") / "t.txt", {"dog": dog / 1000})
    flags = []
    for key, value in fx.model_params(tiny_files, thresholds=thresholds).items():
        flags += [f"--{key.replace('_', '-')}", value]
    return flags


@pytest.fixture()
def dataset(request, images) -> fo.Dataset:
    ds = fx.make_dataset(f"cli-{request.node.name}"[:60], images, labels=[["dog"], ["cat"], [], ["dog", "car"]])
    yield ds
    ds.delete()


def _run(capsys, args: list[str]) -> tuple[int, dict | None, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if code == 0 else None, captured.err


def test_tag_disagreements_and_export_from_the_command_line(dataset, model_flags, tmp_path, capsys) -> None:
    code, tagged, _ = _run(capsys, ["fiftyone", "tag", "--dataset", dataset.name, "--label-field", "ground_truth",
                                    "--no-progress", *model_flags])
    assert code == 0 and tagged["tagged"] == 4
    assert [[c.label for c in label.classifications] for label in dataset.values("ram")] == [["dog"]] * 4

    code, again, _ = _run(capsys, ["fiftyone", "tag", "--dataset", dataset.name, "--label-field", "ground_truth",
                                   "--no-progress", *model_flags])
    assert code == 0 and (again["tagged"], again["skipped"]) == (0, 4)

    code, review, _ = _run(capsys, ["fiftyone", "disagreements", "--dataset", dataset.name,
                                    "--label-field", "ground_truth", "--view-name", "to-fix", "--no-progress"])
    assert code == 0 and review["saved_view"] == "to-fix"
    missing = {s.id: [c.label for c in s["ram_vs_ground_truth_missing"].classifications]
               for s in dataset.load_saved_view("to-fix")}
    ids = dataset.values("id")
    assert missing[ids[1]] == ["dog"] and missing[ids[2]] == ["dog"] and missing[ids[0]] == []

    out = tmp_path / "export"
    code, export, _ = _run(capsys, ["fiftyone", "export", "--dataset", dataset.name, "--label-field", "ground_truth",
                                    "--out", str(out), "--copy-images", "--no-progress", *model_flags])
    assert code == 0 and export["records"] == 3  # the sample with no labels has nothing to learn from
    records = read_finetune_json(out / "ram_finetune.json", num_classes=48)
    assert all(Path(out / r.image_path).is_file() for r in records)


def test_saved_view_as_the_target(dataset, model_flags, capsys) -> None:
    dataset.save_view("first-two", dataset.limit(2))
    code, tagged, _ = _run(capsys, ["fiftyone", "tag", "--dataset", dataset.name, "--view", "first-two",
                                    "--no-progress", *model_flags])
    assert code == 0 and tagged["total"] == 2 and dataset.count("ram") == 2


def test_bad_input_exits_with_a_message(dataset, model_flags, capsys) -> None:
    code, _, err = _run(capsys, ["fiftyone", "tag", "--dataset", "no-such-dataset", "--no-progress", *model_flags])
    assert code == 2 and "No FiftyOne dataset named 'no-such-dataset'" in err
    code, _, err = _run(capsys, ["fiftyone", "disagreements", "--dataset", dataset.name, "--label-field",
                                 "ground_truth", "--no-progress"])
    assert code == 2 and "not written by Tag with RAM" in err
    code, _, err = _run(capsys, ["fiftyone", "tag", "--dataset", dataset.name, "--view", "nope", "--no-progress",
                                 *model_flags])
    assert code == 2 and "no saved view 'nope'" in err


def test_similarity_from_the_command_line(dataset, model_flags, capsys) -> None:
    code, result, _ = _run(capsys, ["fiftyone", "similarity", "--dataset", dataset.name, "--no-text-queries",
                                    "--no-progress", *model_flags])
    assert code == 0 and (result["embedded"], result["indexed"], result["text_queries"]) == (4, 4, False)
    first = dataset.first().id
    assert dataset.sort_by_similarity(first, k=1, brain_key="ram_sim").first().id == first
