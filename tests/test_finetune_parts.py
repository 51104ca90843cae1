"""The pieces of ram_model.finetune on their own: loss, metrics, augmentation, data policy, model surgery."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import average_precision_score

from ram_model.model.config import EngineConfig
from ram_model.finetune import FinetuneConfig, FinetuneError, asymmetric_loss, average_precision, tagging_metrics
from ram_model.finetune.augment import TrainAugment, random_resized_crop
from ram_model.finetune.data import label_matrix, load_examples, split_examples
from ram_model.finetune.model_setup import enable_gradient_checkpointing, grow_classes, trainable_parameter_groups
from ram_model.model.ram import RAMTagger
from ram_model.review import build_finetune_records, build_label_mapping, read_finetune_json, write_finetune_json
from ram_model.weights.testing import TINY_HEAD, TINY_SWIN, random_init_


def test_asymmetric_loss_matches_the_official_formula() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, generator=gen) * 3
    y = (torch.rand(3, 5, generator=gen) < 0.4).float()
    p = torch.sigmoid(logits)
    p_neg = (1 - p + 0.05).clamp(max=1)
    # gamma_pos = 0: positives are plain log-likelihood; negatives weighted by (1 - p_neg)^7.
    expected = -(y * torch.log(p) + (1 - y) * torch.log(p_neg) * (1 - p_neg) ** 7).sum() / 3
    assert torch.allclose(asymmetric_loss(logits, y), expected, rtol=1e-5)


def test_asymmetric_loss_ignores_unknown_cells_and_easy_negatives() -> None:
    logits = torch.tensor([[2.0, -1.0, 5.0]], requires_grad=True)
    y = torch.tensor([[1.0, 0.0, 0.0]])
    known = torch.tensor([[1.0, 1.0, 0.0]])
    loss = asymmetric_loss(logits, y, known)
    loss.backward()
    assert logits.grad[0, 2] == 0  # unknown: no gradient however confident the model is
    easy = torch.tensor([[-10.0]], requires_grad=True)  # p < clip: the clipped negative loss is exactly 0
    assert float(asymmetric_loss(easy, torch.zeros(1, 1)).detach()) == 0.0


def test_average_precision_agrees_with_sklearn() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = (rng.random(40) < 0.3).astype(int)
        y[0] = 1
        s = np.round(rng.random(40), 1)  # many ties
        assert average_precision(s, y) == pytest.approx(average_precision_score(y, s), abs=1e-9)


def test_metrics_skip_unknown_cells() -> None:
    labels = np.array([[1, -1], [0, 1], [1, 0], [-1, 0]])
    probs = np.array([[0.9, 0.99], [0.2, 0.8], [0.7, 0.1], [0.99, 0.3]])
    m = tagging_metrics(labels, probs, np.array([0.5, 0.5]), ["a", "b"])
    assert m["per_class"]["a"] == {"ap": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2,
                                   "known": 3, "threshold": 0.5}
    assert m["micro_f1"] == 1.0 and m["macro_map"] == 1.0 and m["classes_evaluated"] == 2


def test_augmentation_is_reproducible_and_sized(tmp_path: Path) -> None:
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 80, 3), dtype=np.uint8))
    aug = TrainAugment(32)
    a = aug(img, np.random.default_rng([1, 2, 3]))
    b = aug(img, np.random.default_rng([1, 2, 3]))
    c = aug(img, np.random.default_rng([1, 2, 4]))
    assert a.shape == (3, 32, 32) and torch.equal(a, b) and not torch.equal(a, c)
    for seed in range(30):  # crops stay inside the image at the requested scale
        crop = random_resized_crop(img, 16, np.random.default_rng(seed))
        assert crop.size == (16, 16)


def _write(path: Path, entries: list[dict]) -> Path:
    path.write_text(json.dumps(entries))
    return path


def test_negatives_policy_reviewed_vs_all(tmp_path: Path) -> None:
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    data = _write(tmp_path / "f.json", [
        {"image_path": "a.png", "caption": ["x"], "union_label_id": [0], "parse_label_id": [[0]]},
        {"image_path": "b.png", "caption": ["x"], "union_label_id": [2], "parse_label_id": [[2]],
         "reviewed_label_id": [2, 3]},
    ])
    examples, files = load_examples([data], num_classes=5, image_root=None)
    assert files[0].entries == 2 and len(files[0].sha256) == 64
    reviewed = label_matrix(examples, 5, "reviewed")
    # Entry 0 has no reviewed_label_id: the file's union {0, 2} is its reviewed set.
    assert reviewed.tolist() == [[1, -1, 0, -1, -1], [-1, -1, 1, 0, -1]]
    assert label_matrix(examples, 5, "all").tolist() == [[1, 0, 0, 0, 0], [0, 0, 1, 0, 0]]
    train, val = split_examples(examples, 0.5, seed=0)
    assert sorted(train + val) == [0, 1] and len(val) == 1
    with pytest.raises(FinetuneError, match="unknown class id 5"):
        load_examples([_write(tmp_path / "g.json", [{"image_path": "a.png", "caption": ["x"],
                                                     "union_label_id": [5], "parse_label_id": [[5]]}])],
                      num_classes=5, image_root=None)


def test_export_with_new_classes_round_trips(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    mapping = build_label_mapping(["Dog", "Unicorn"], ["dog", "cat"])
    records, report = build_finetune_records([(str(tmp_path / "a.png"), ["Dog", "Unicorn"], None)], mapping,
                                             new_classes=["unicorn"])
    assert records[0].union_label_id == [0, 2] and report.skipped_labels == {}
    path = write_finetune_json(records, tmp_path / "x.json", image_root=tmp_path, num_classes=3)
    assert read_finetune_json(path, num_classes=3)[0].union_label_id == [0, 2]
    with pytest.raises(ValueError, match="unknown class id 2"):
        read_finetune_json(path, num_classes=2)
    with pytest.raises(ValueError, match="already a RAM tag"):
        build_finetune_records([], mapping, new_classes=["Dog"])


@pytest.mark.parametrize("variant,rows", [("ram", 1), ("ram_plus", 51)])
def test_new_classes_grow_label_embed_and_only_new_rows_train(variant: str, rows: int) -> None:
    base = random_init_(RAMTagger(TINY_SWIN, TINY_HEAD, 4, variant), 0)
    grown = grow_classes(base, 2, seed=0)
    assert grown.num_classes == 6 and grown.label_embed.shape[0] == 6 * rows
    assert torch.equal(grown.label_embed[:4 * rows], base.label_embed)
    before = grown.label_embed.detach().clone()
    groups = trainable_parameter_groups(grown, mode="head", unfreeze_stages=1, old_classes=4, weight_decay=0.05)
    assert enable_gradient_checkpointing(grown) > 0
    assert not any(p.requires_grad for p in grown.visual_encoder.layers[0].parameters())
    assert all(p.requires_grad for p in grown.visual_encoder.layers[-1].parameters())
    opt = torch.optim.AdamW(groups, lr=1e-2, weight_decay=0.05)
    images = torch.randn(2, 3, 64, 64)
    for _ in range(2):
        asymmetric_loss(grown(images), torch.ones(2, 6)).backward()
        opt.step()
        opt.zero_grad()
    assert torch.equal(grown.label_embed[:4 * rows], before[:4 * rows])  # existing classes frozen exactly
    assert not torch.equal(grown.label_embed[4 * rows:], before[4 * rows:])


def test_config_errors_name_the_problem(tmp_path: Path) -> None:
    base = EngineConfig(checkpoint="x")
    with pytest.raises(FinetuneError, match="val_split"):
        FinetuneConfig(data=("a.json",), base=base, output=str(tmp_path), val_split=0)
    with pytest.raises(FinetuneError, match="mode"):
        FinetuneConfig(data=("a.json",), base=base, output=str(tmp_path), mode="lora")  # type: ignore[arg-type]
    assert FinetuneConfig(data="a.json", base=base, output=str(tmp_path), mode="full").learning_rate > 0


def test_should_stop_keeps_the_last_epoch_and_the_same_call_resumes(tmp_path: Path, shapes_model) -> None:
    from finetune_fixtures import one_torch_thread
    from ram_model.finetune import finetune
    from ram_model.weights.testing import make_shapes_dataset

    data = make_shapes_dataset(tmp_path / "data", 20, seed=3)
    cfg = FinetuneConfig(data=(str(data),), base=shapes_model.engine_config(), output=str(tmp_path / "out"),
                         epochs=2, batch_size=4, grad_accum=2, val_split=0.2, num_workers=0)
    calls, events = [], []

    def stop_in_second_epoch() -> bool:
        calls.append(1)
        return len(calls) > 5  # 4 batches per epoch: stop at the 2nd batch of epoch 2

    with one_torch_thread():
        with pytest.raises(FinetuneError, match="holds epoch 1. Re-run the same command to resume"):
            finetune(cfg, should_stop=stop_in_second_epoch)
        assert (tmp_path / "out" / "checkpoints" / "last.pt").is_file()
        result = finetune(cfg, progress=events.append)
    train = [e for e in events if e["phase"] == "train"]
    assert {e["epoch"] for e in train} == {2} and train[-1]["step"] == train[-1]["steps"] == 4
    assert all(set(e) == {"phase", "epoch", "epochs", "step", "steps", "loss", "eta_s"} for e in train)
    assert [e["model"] for e in events if e["phase"] == "eval"] == ["new"]  # base scores kept from the first call
    assert result.checkpoint.is_file() and result.metrics["new"]["images"] == 4
