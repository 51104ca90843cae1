"""`ram-annotate finetune` end to end on the tiny model and the shapes task (real files, real training)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from finetune_fixtures import model_flags, run_cli
from ram_model import EngineConfig, TaggingEngine
from ram_model.weights.checkpoint import read_checkpoint
from ram_model.weights.testing import TINY_TAGS

K = len(TINY_TAGS)


def test_finetuning_beats_the_base_on_the_held_out_split(finetune_run) -> None:
    out, summary = finetune_run
    metrics = json.loads((out / "metrics.json").read_text())
    base, new = metrics["base"], metrics["new"]
    assert metrics["split"] == {"train": 120, "val": 40, "negatives": "reviewed"}
    # Side by side, on the same validation images and the same known cells.
    assert set(base["per_class"]) == set(new["per_class"]) == {"dog", "cat", "car", "tree", "bird", "boat", "unicorn"}
    assert new["macro_map"] > base["macro_map"] + 0.15
    assert new["micro_map"] > base["micro_map"] + 0.15
    assert new["micro_f1"] > base["micro_f1"]
    assert summary["micro_map"] == {"base": base["micro_map"], "new": new["micro_map"]}
    for entry in new["per_class"].values():
        assert set(entry) >= {"ap", "precision", "recall", "f1", "support"}


def test_output_loads_with_no_other_flag_and_predicts_the_new_class(finetune_run, shapes_data: Path) -> None:
    out, _ = finetune_run
    card = json.loads((out / "card.json").read_text())
    engine = TaggingEngine.from_config(EngineConfig(checkpoint=str(out / "model.safetensors"), device="cpu",
                                                    precision="fp32", decode_workers=0))
    assert engine.model_version == card["model_version"]
    assert engine.vocab.names[-1] == "unicorn" and len(engine.vocab) == K + 1
    tuned = np.array([float(x) for x in (out / "thresholds.txt").read_text().split()], dtype=np.float32)
    np.testing.assert_array_equal(engine.vocab.thresholds, tuned)

    entries = json.loads(shapes_data.read_text())
    with_unicorn = [shapes_data.parent / e["image_path"] for e in entries if K in e["union_label_id"]][:6]
    without = [shapes_data.parent / e["image_path"] for e in entries if K not in e["union_label_id"]][:6]
    code, stdout = run_cli(["tag", *map(str, with_unicorn + without), "--checkpoint", str(out / "model.safetensors"),
                            "--device", "cpu", "--precision", "fp32", "--no-progress", "--all-scores"])
    assert code == 0
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert all(r["model_version"] == card["model_version"] for r in rows)
    scores = np.array([r["scores"]["unicorn"] for r in rows])
    # The asymmetric loss keeps every reviewed class's scores high on a run this short, so the
    # new class shows in the ranking: its images score above the others, and it fires on them.
    assert scores[:6].mean() > scores[6:].mean() + 0.03
    fired = [any(t["name"] == "unicorn" for t in r["tags"]) for r in rows]
    assert all(fired[:6])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["new"]["per_class"]["unicorn"]["ap"] > metrics["base"]["per_class"]["unicorn"]["ap"] + 0.12


def test_existing_classes_embeddings_stay_frozen_and_official_layout_matches(finetune_run, shapes_model) -> None:
    out, _ = finetune_run
    tuned = load_file(str(out / "model.safetensors"))
    base = read_checkpoint(shapes_model.checkpoint).state_dict
    rows = K * 51
    assert torch.equal(tuned["label_embed"][:rows], base["label_embed"].float())
    assert tuned["label_embed"].shape[0] == rows + 51
    assert not torch.equal(tuned["fc.weight"], base["fc.weight"])  # the head did train
    assert torch.equal(tuned["visual_encoder.patch_embed.proj.weight"],  # head mode: the backbone did not
                       base["visual_encoder.patch_embed.proj.weight"])
    official = torch.load(out / "model.pth", map_location="cpu", weights_only=True)
    assert official["ram_annotate_random_weights"] is True
    assert set(official["model"]) == set(tuned)
    assert all(torch.equal(official["model"][k], tuned[k]) for k in tuned)


def test_run_folder_card_and_log(finetune_run, shapes_model, shapes_data: Path) -> None:
    out, _ = finetune_run
    card = json.loads((out / "card.json").read_text())
    assert card["base_model_version"].startswith("random-ram_plus-")
    assert card["data"][0]["entries"] == 160 and len(card["data"][0]["sha256"]) == 64
    assert card["recipe"]["mode"] == "head" and card["recipe"]["lr"] == 3e-4 and card["seed"] == 0
    assert card["new_classes"] == ["unicorn"]
    events = [json.loads(line)["event"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert events[0] == "start" and events[-1] == "done" and events.count("epoch") == 10
    assert (out / "thresholds.txt.report.json").is_file()
    assert not (out / "checkpoints" / "last.pt").exists()  # the resume point goes once the run is complete
    # A finished folder is never overwritten.
    code, _ = run_cli(["finetune", "--data", str(shapes_data), "--output", str(out), *model_flags(shapes_model)])
    assert code == 2


def test_compile_is_refused_for_training(shapes_model, shapes_data: Path, tmp_path: Path, capsys) -> None:
    code, _ = run_cli(["finetune", "--data", str(shapes_data), "--output", str(tmp_path / "run"), "--compile",
                       *model_flags(shapes_model)])
    assert code == 2 and "--compile applies to tagging" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_fine_tune_reads_ft_n_first_and_keeps_the_random_mark(finetune_run, tmp_path: Path) -> None:
    """Base and tuned versions differ in their first characters (Label Studio's tabs cut the middle);
    `random` still marks random weights, after the `ft<N>-` of a fine-tune of them."""
    from dataclasses import replace

    from ram_model.weights.convert import convert_checkpoint
    from ram_model.weights.model_files import load_model
    from ram_model.weights.versions import is_random_version

    out, _ = finetune_run
    card = json.loads((out / "card.json").read_text())
    base, tuned = card["base_model_version"], card["model_version"]
    assert base.startswith("random-ram_plus-") and tuned.startswith("ft1-random-ram_plus-")
    assert tuned.removeprefix("ft1-") != base and is_random_version(tuned) and is_random_version(base)
    assert not is_random_version(tuned.replace("random-", "")) and not is_random_version("ram_plus-random-x")

    loaded = load_model(EngineConfig(checkpoint=str(out / "model.safetensors"), device="cpu", precision="fp32"))
    assert loaded.generation == 1 and loaded.model_version == tuned
    converted = convert_checkpoint(loaded, tmp_path / "converted.safetensors", dtype="fp32")
    again = load_model(EngineConfig(checkpoint=str(converted), device="cpu", precision="fp32"))
    assert again.generation == 1 and again.model_version.startswith("ft1-random-ram_plus-")
    # A fine-tune of that fine-tune (the trainer counts base.generation + 1) reads ft2-.
    assert replace(loaded, generation=2).model_version == "ft2-" + tuned.removeprefix("ft1-")
