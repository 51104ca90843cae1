"""Evidence boxes as Label Studio RectangleLabels predictions, stored by the real Label Studio the tests start."""
from __future__ import annotations

import io

import numpy as np
import pytest
from labelstudio_server import LabelStudio
from PIL import Image

from ram_client.labelstudio.evidence_regions import EVIDENCE_MARK, EVIDENCE_SCORE_SCALE, evidence_rectangles
from ram_model import TaggingEngine
from ram_model.evidence import evidence_for

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image">
    <Label value="Dog"/><Label value="Cat"/>
  </RectangleLabels>
</View>"""


def test_rectangles_are_scaled_marked_and_skip_unmapped_or_boxless_tags() -> None:
    evidence = [{"name": "dog", "box": [0.25, 0.5, 0.75, 1.0], "score": 0.8},
                {"name": "tree", "box": [0, 0, 1, 1], "score": 0.9},
                {"name": "cat", "box": None, "score": 0.7}]
    (item,) = evidence_rectangles(evidence, from_name="box", to_name="image", width=400, height=200,
                                  labels={"dog": "Dog", "cat": "Cat"})
    v = item["value"]
    assert (v["x"], v["y"], v["width"], v["height"], v["rotation"]) == pytest.approx((25, 50, 50, 50, 0))
    assert v["rectanglelabels"] == ["Dog"] and item["type"] == "rectanglelabels"
    assert item["score"] == pytest.approx(0.8 * EVIDENCE_SCORE_SCALE) and item["meta"] == {"text": [EVIDENCE_MARK]}
    assert (item["original_width"], item["original_height"]) == (400, 200)
    with pytest.raises(ValueError):
        evidence_rectangles(evidence, from_name="box", to_name="image", width=1, height=1, labels={}, score_scale=0)


def test_label_studio_stores_evidence_rectangles_as_a_prediction(label_studio: LabelStudio, tiny_files) -> None:
    engine = TaggingEngine.from_config(tiny_files.engine_config(precision="fp32"))
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 90, 3), dtype=np.uint8))
    (pred,) = evidence_for(engine, [picture], tags=["dog", "cat"])
    entries = [{**e.to_dict(), "score": e.score} for e in pred.evidence]
    results = evidence_rectangles(entries, from_name="box", to_name="image", width=90, height=60,
                                  labels={"dog": "Dog", "cat": "Cat"})
    assert len(results) == 2
    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    with label_studio.client() as ls:
        project = ls.post("/api/projects", json={"title": "evidence boxes", "label_config": CONFIG}).json()["id"]
        imported = ls.post(f"/api/projects/{project}/import", files={"file": ("p.png", buf.getvalue(), "image/png")})
        assert imported.status_code == 201, imported.text
        task = ls.get("/api/tasks", params={"project": project}).json()["tasks"][0]["id"]
        made = ls.post("/api/predictions", json={"task": task, "result": results, "score": 0.0,
                                                 "model_version": f"{engine.model_version}-evidence"})
        assert made.status_code == 201, made.text
        stored = ls.get("/api/predictions", params={"task": task}).json()
    (prediction,) = stored
    assert [r["value"]["rectanglelabels"] for r in prediction["result"]] == [["Dog"], ["Cat"]]
    for sent, kept in zip(results, prediction["result"]):
        for key in ("x", "y", "width", "height", "rotation"):
            assert kept["value"][key] == pytest.approx(sent["value"][key])
        assert kept["meta"] == {"text": [EVIDENCE_MARK]} and kept["score"] == pytest.approx(sent["score"])


def test_backend_evidence_regions_fill_only_rectangle_controls_with_mapped_fired_tags(tiny_files, tmp_path) -> None:
    from backend.labelstudio.evidence import predict_evidence_regions
    from backend.labelstudio.regions import region_controls
    from ram_model import ThresholdPolicy

    engine = TaggingEngine.from_config(tiny_files.engine_config(precision="fp32"))
    config = CONFIG.replace("</View>", '<BrushLabels name="brush" toName="image"><Label value="Dog"/></BrushLabels>'
                                       "</View>")
    controls = region_controls(config, engine.vocab.names, engine.vocab.names_zh)
    assert [c.kind for c in controls] == ["rectanglelabels", "brushlabels"]
    rng = np.random.default_rng(1)
    paths = []
    for i, size in enumerate([(90, 60), (40, 120)]):
        path = tmp_path / f"t{i}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    policy = ThresholdPolicy(threshold=0.0)  # every tag fires; only dog and cat map onto labels
    regions = predict_evidence_regions(engine, controls, {0: {"image": paths[0]}, 1: {"image": paths[1]}},
                                       policy, policy.resolve(engine.vocab))
    for pos, (width, height) in zip((0, 1), [(90, 60), (40, 120)]):
        items = regions[pos]
        assert sorted(i["value"]["rectanglelabels"][0] for i in items) == ["Cat", "Dog"]
        assert all(i["from_name"] == "box" and i["meta"] == {"text": [EVIDENCE_MARK]} for i in items)
        assert all((i["original_width"], i["original_height"]) == (width, height) for i in items)
    none_fire = ThresholdPolicy(threshold=1.0)
    assert predict_evidence_regions(engine, controls, {0: {"image": paths[0]}}, none_fire,
                                    none_fire.resolve(engine.vocab)) == {0: []}


def test_predict_fills_rectangles_with_evidence_boxes_only_when_turned_on(backend_engine, file_server,
                                                                          tmp_path) -> None:
    """Without a detector: RectangleLabels get evidence boxes when the setting is on, nothing when off."""
    from backend_fixtures import Route, image_bytes, make_settings
    from fastapi.testclient import TestClient

    from backend.app import create_app
    from ram_model import ThresholdPolicy

    token = "c" * 40
    file_server.routes["/data/upload/1/e.png"] = Route(body=image_bytes(2, size=(80, 40)),
                                                       require_auth=f"Token {token}")
    task = {"id": 1, "data": {"image": "/data/upload/1/e.png"}, "project": 9}
    both = CONFIG.replace("</View>", '<Choices name="tags" toName="image" choice="multiple"><Choice value="dog"/>'
                                     "</Choices></View>")
    answers = {}
    for on in (True, False):
        settings = make_settings(tmp_path / str(on), label_studio_url=file_server.url, label_studio_api_key=token,
                                 evidence_boxes=on)
        app = create_app(settings, engine=backend_engine, policy=ThresholdPolicy())
        with TestClient(app) as client:
            answer = client.post("/predict", json={"tasks": [task], "label_config": both, "project": "9.1"})
        assert answer.status_code == 200, answer.text
        answers[on] = answer.json()["results"][0]
    items = [i for i in answers[True]["result"] if i["type"] == "rectanglelabels"]
    assert sorted(i["value"]["rectanglelabels"][0] for i in items) == ["Cat", "Dog"]  # the firing tags, mapped
    assert all(i["meta"] == {"text": [EVIDENCE_MARK]} and i["original_width"] == 80 for i in items)
    assert [i["type"] for i in answers[False]["result"]] == ["choices"]  # off: the Choices only
    (choices,) = [i for i in answers[True]["result"] if i["type"] == "choices"]
    assert choices["value"] == answers[False]["result"][0]["value"]
