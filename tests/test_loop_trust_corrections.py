"""Corrections mean what the annotator meant (issue 22): unchosen labels of a control the
annotator saw are negatives; a label mapped onto several RAM tags is a disjunction, so
choosing it makes none of them a positive (backend/correction_targets.py has the rule); a
tag the reviewer removed goes down after training (tiny model, real fine-tune)."""
from __future__ import annotations

import json
from pathlib import Path

from backend_fixtures import make_app
from fastapi.testclient import TestClient
from synthetic_shapes import shape_dataset

from backend.training.export import finetune_entries
from ram_model import EngineConfig, TaggingEngine
from ram_model.finetune import FinetuneConfig, finetune
from ram_model.weights.testing import TINY_TAGS

PET = """<View>
  <Image name="image" value="$image"/>
  <Choices name="tags" toName="image" choice="multiple">
    <Choice value="Pet" predicted_values="dog,cat"/><Choice value="Car"/><Choice value="Tree"/>
  </Choices>
</View>"""


def _annotate(client: TestClient, annotation_id: int, choices: list[str]) -> None:
    task = {"id": annotation_id, "data": {"image": f"/data/upload/3/{annotation_id}.png"}, "project": 3}
    result = [{"from_name": "tags", "to_name": "image", "type": "choices", "value": {"choices": choices}}]
    response = client.post("/webhook", json={
        "action": "ANNOTATION_CREATED", "project": {"id": 3, "label_config": PET}, "task": task,
        "annotation": {"id": annotation_id, "task": task["id"], "result": result, "was_cancelled": False}})
    assert response.json()["stored"] == 1, response.text


def test_a_disjunctive_label_chosen_is_no_positive_and_unchosen_labels_are_negatives(
        tmp_path: Path, backend_engine: TaggingEngine) -> None:
    ids = {name: TINY_TAGS.index(name) for name in ("dog", "cat", "car", "tree")}
    with TestClient(make_app(tmp_path, backend_engine)) as client:
        _annotate(client, 1, ["Pet", "Car"])  # a dog OR a cat, and a car; no tree
        _annotate(client, 2, ["Tree"])  # no pet at all (neither dog nor cat), no car
        store = client.app.state.ram.store
        chosen, rejected = store.get(1), store.get(2)
        entries = {e["image_path"]: e for e in _entries(store, chosen, rejected, tmp_path)}
    pet = next(t for t in chosen.final_ram_tags if t["label"] == "Pet")
    assert pet["ram_index"] is None and sorted(pet["ram_any_of"]) == sorted([ids["dog"], ids["cat"]])
    assert set(chosen.reviewed_ram) == {ids["car"], ids["tree"]}, "dog and cat stay unknown"
    assert set(rejected.reviewed_ram) == set(ids.values()), "an unchosen Pet: dog and cat are absent"

    first, second = entries["1.png"], entries["2.png"]
    assert first["union_label_id"] == [ids["car"]]
    assert ids["dog"] not in first["reviewed_label_id"] and ids["cat"] not in first["reviewed_label_id"]
    assert second["union_label_id"] == [ids["tree"]] and {ids["dog"], ids["cat"]} <= set(second["reviewed_label_id"])


def _entries(store, chosen, rejected, tmp_path: Path) -> list[dict]:
    """The finetune export of the two corrections, with stand-in cached images."""
    root = tmp_path / "images"
    root.mkdir()
    for c in (chosen, rejected):
        path = root / f"{c.annotation_id}.png"
        path.write_bytes(b"png")
        store.set_image_path(c.annotation_id, str(path))
    entries, summary = finetune_entries(store, "3", image_root=root)
    assert summary.exported == 2, summary
    return entries


def test_a_tag_the_reviewer_removed_goes_down_after_training(tmp_path: Path, tiny_files) -> None:
    """Every image: the reviewer kept what it shows and removed `dog` (a known negative, and
    on some images the only answer): the fine-tuned model scores dog lower on them."""
    images = tmp_path / "images"
    images.mkdir()
    dog, cat = TINY_TAGS.index("dog"), TINY_TAGS.index("cat")
    entries = []
    for i, (png, _) in enumerate(shape_dataset(16, seed=7)):
        (images / f"{i}.png").write_bytes(png)
        union = [cat] if i % 2 else []  # half of them: dog removed and nothing else chosen
        entries.append({"image_path": f"{i}.png", "caption": ["cat" if union else ""], "union_label_id": union,
                        "parse_label_id": [union], "reviewed_label_id": sorted({dog, cat})})
    data = tmp_path / "data.json"
    data.write_text(json.dumps(entries))
    base = tiny_files.engine_config(precision="fp32", device="cpu")
    result = finetune(FinetuneConfig(
        data=(str(data),), image_root=str(images), base=base, output=str(tmp_path / "run"), epochs=3, lr=1e-3,
        batch_size=8, val_split=0.25, augment=False, num_workers=0, precision="fp32", device="cpu"))
    paths = [str(images / f"{i}.png") for i in range(len(entries))]
    before = TaggingEngine.from_config(base).predict_proba(paths)[:, dog]
    tuned = TaggingEngine.from_config(EngineConfig(checkpoint=str(result.checkpoint), precision="fp32",
                                                   device="cpu"))
    after = tuned.predict_proba(paths)[:, dog]
    print(f"\nP(dog) on the reviewed images: {before.mean():.3f} -> {after.mean():.3f}")
    assert after.mean() < before.mean() - 0.05
