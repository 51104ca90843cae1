"""Region pre-annotations in a real Label Studio: a config with Choices, RectangleLabels, BrushLabels and
PolygonLabels on one Image gets all four from our server running RAM + a tiny random detector and SAM."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest

pytest.importorskip("transformers")

from backend_fixtures import FIRING, image_bytes, make_settings, running_server  # noqa: E402
from labelstudio_server import LabelStudio  # noqa: E402

from ram_model import TaggingEngine, ThresholdPolicy  # noqa: E402

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

REGION_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Choices name="tags" toName="image" choice="multiple">
    <Choice value="Dogs"/><Choice value="Cat"/>
  </Choices>
  <RectangleLabels name="box" toName="image">
    <Label value="Dogs"/><Label value="Kitty" predicted_values="cat"/><Label value="Unicorn"/>
  </RectangleLabels>
  <BrushLabels name="brush" toName="image"><Label value="Dogs"/></BrushLabels>
  <PolygonLabels name="poly" toName="image"><Label value="Cat"/></PolygonLabels>
</View>"""


def _ok(response: httpx.Response):
    assert response.status_code < 300, f"{response.request.url}: {response.text[:500]}"
    return response.json() if response.content else {}


@pytest.fixture(scope="module")
def detect_server(backend_engine: TaggingEngine, tmp_path_factory: pytest.TempPathFactory):
    from backend.app import create_app
    from backend.serving.grounding import GroundingService
    from ram_model.grounding import GroundedLabeler, load_detector, load_segmenter

    service = GroundingService(GroundedLabeler(
        backend_engine, load_detector("random:tiny", words=backend_engine.vocab.names),
        load_segmenter("random:tiny"), ThresholdPolicy()))
    app = create_app(make_settings(tmp_path_factory.mktemp("ls-detect")), engine=backend_engine,
                     policy=ThresholdPolicy(), grounding=service)
    with running_server(app) as url:
        yield url


def test_label_studio_stores_regions_and_choices(label_studio: LabelStudio, detect_server) -> None:
    with label_studio.client() as ls:
        project = _ok(ls.post("/api/projects", json={"title": "RAM regions", "label_config": REGION_CONFIG}))["id"]
        _ok(ls.post(f"/api/projects/{project}/import",
                    files=[("file", ("r.png", image_bytes(5, size=(96, 72)), "image/png"))]))
        _ok(ls.post("/api/ml", json={"project": project, "url": detect_server, "title": "RAM",
                                     "is_interactive": False}))
        _ok(ls.post("/api/dm/actions", params={"id": "retrieve_tasks_predictions", "project": project},
                    json={"selectedItems": {"all": True, "excluded": []}}))
        body = _ok(ls.get("/api/tasks", params={"project": project}))
        (task,) = body["tasks"] if isinstance(body, dict) else body
        (prediction,) = _ok(ls.get("/api/predictions", params={"task": task["id"]}))
    by_type: dict[str, list[dict]] = {}
    for item in prediction["result"]:
        by_type.setdefault(item["type"], []).append(item)
    (choices,) = by_type["choices"]
    assert set(choices["value"]["choices"]) == {"Dogs", "Cat"}
    boxes = by_type["rectanglelabels"]
    assert boxes, "the fired tags dog and cat prompt the detector"
    # Labels are mapped like Choices: dog -> Dogs, cat -> Kitty (predicted_values); Unicorn maps to nothing.
    assert {b["value"]["rectanglelabels"][0] for b in boxes} <= {"Dogs", "Kitty"}
    for b in boxes:
        v = b["value"]
        assert 0 <= v["x"] <= 100 and 0 <= v["width"] <= 100 and 0 <= b["score"] <= 1
        assert (b["original_width"], b["original_height"]) == (96, 72)
    assert all(i["value"]["brushlabels"] == ["Dogs"] and i["value"]["format"] == "rle"
               for i in by_type.get("brushlabels", []))
    assert all(i["value"]["polygonlabels"] == ["Cat"] and len(i["value"]["points"]) >= 3
               for i in by_type.get("polygonlabels", []))
    assert by_type.get("brushlabels") or by_type.get("polygonlabels")
    assert set(FIRING) == {"dog", "cat"}


@pytest.mark.skipif(__import__("ls_browser").browser_available() is not None,
                    reason=str(__import__("ls_browser").browser_available()))
def test_regions_are_drawn_in_the_labeling_view(label_studio: LabelStudio, detect_server, tmp_path) -> None:
    """Headless Chromium opens the task: the predicted regions are listed and drawn on the image.
    `RAM_ANNOTATE_SCREENSHOTS=DIR` also keeps the picture (docs/screenshots/ls_detect_regions.png)."""
    import os
    import shutil

    from ls_browser import browser, labeling_screenshot, login
    from selenium.webdriver.common.by import By
    from synthetic_shapes import shape_dataset

    config = REGION_CONFIG.replace('<BrushLabels name="brush" toName="image"><Label value="Dogs"/></BrushLabels>', "")
    with label_studio.client() as ls:
        project = _ok(ls.post("/api/projects", json={"title": "RAM boxes", "label_config": config}))["id"]
        ((png, _),) = shape_dataset(1, seed=2)
        _ok(ls.post(f"/api/projects/{project}/import", files=[("file", ("shapes.png", png, "image/png"))]))
        _ok(ls.post("/api/ml", json={"project": project, "url": detect_server, "title": "RAM"}))
        _ok(ls.post("/api/dm/actions", params={"id": "retrieve_tasks_predictions", "project": project},
                    json={"selectedItems": {"all": True, "excluded": []}}))
        body = _ok(ls.get("/api/tasks", params={"project": project}))
        (task,) = body["tasks"] if isinstance(body, dict) else body
        (prediction,) = _ok(ls.get("/api/predictions", params={"task": task["id"]}))
    regions = [r for r in prediction["result"] if r["type"] in ("rectanglelabels", "polygonlabels")]
    assert regions
    shot = tmp_path / "ls_detect_regions.png"
    with browser(width=1400, height=1000) as chrome:
        login(chrome, label_studio.url)
        text = labeling_screenshot(chrome, label_studio.url, project, task["id"], shot)
        shapes = chrome.find_elements(By.CSS_SELECTOR, "canvas")
    assert shot.stat().st_size > 10_000 and shapes, "the image and its regions are drawn on canvases"
    assert "Kitty" in text or "Dogs" in text
    if os.environ.get("RAM_ANNOTATE_SCREENSHOTS"):
        shutil.copy(shot, Path(os.environ["RAM_ANNOTATE_SCREENSHOTS"]) / shot.name)
