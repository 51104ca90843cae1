"""What a user sees in Label Studio 1.23, checked in headless Chromium: the data
manager's Prediction score column shows our scores, and each chosen label's own score
is shown to the annotator (`<TextArea name="ram_scores">`). Skipped where Chromium,
chromedriver or selenium is missing; `tests/ls_browser.py` also refreshes the
screenshots in docs/screenshots."""
from __future__ import annotations

import re
import time

import httpx
import pytest
from backend_fixtures import make_app, running_server
from labelstudio_server import LabelStudio
from ls_browser import browser, browser_available, data_manager_scores, labeling_screenshot, login
from synthetic_shapes import shape_dataset

from ram_model import TaggingEngine

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow,
              pytest.mark.skipif(browser_available() is not None, reason=str(browser_available()))]

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Choices name="tags" toName="image" choice="multiple" showInLine="true">
    <Choice value="Dogs"/><Choice value="Cat"/><Choice value="Car"/>
  </Choices>
  <TextArea name="ram_scores" toName="image" editable="false" rows="2"/>
</View>"""


def test_prediction_scores_are_visible_in_label_studio(label_studio: LabelStudio, backend_engine: TaggingEngine,
                                                       tmp_path):
    app = make_app(tmp_path, backend_engine)
    with running_server(app) as url, label_studio.client() as ls:
        project = ls.post("/api/projects", json={"title": "RAM scores", "label_config": CONFIG}).json()["id"]
        files = [(f"f{i}", (f"s{i}.png", png, "image/png")) for i, (png, _) in enumerate(shape_dataset(3, seed=4))]
        ls.post(f"/api/projects/{project}/import", files=files).raise_for_status()
        backend = ls.post("/api/ml", json={"project": project, "url": url, "title": "RAM"}).json()
        ls.post("/api/dm/actions", params={"id": "retrieve_tasks_predictions", "project": project},
                json={"selectedItems": {"all": True, "excluded": []}}).raise_for_status()
        version = httpx.post(f"{url}/setup", json={"project": f"{project}.0", "schema": CONFIG}).json()["model_version"]
        deadline = time.monotonic() + 30
        while ls.get(f"/api/projects/{project}").json()["model_version"] != version:
            assert time.monotonic() < deadline, "the project was not pointed at our model_version"
            time.sleep(0.3)
        assert ls.get(f"/api/ml/{backend['id']}").json()["title"] == f"RAM · {version}"
        tasks = ls.get("/api/tasks", params={"project": project, "fields": "all"}).json()["tasks"]
        expected = sorted(f"{t['predictions_score']:.3f}" for t in tasks)
        first = min(tasks, key=lambda t: t["id"])
        (prediction,) = ls.get("/api/predictions", params={"task": first["id"]}).json()
        lines = next(r["value"]["text"] for r in prediction["result"] if r["from_name"] == "ram_scores")

        with browser() as chrome:
            login(chrome, label_studio.url)
            shown = data_manager_scores(chrome, ls, label_studio.url, project, tmp_path / "data_manager.png")
            assert sorted(shown) == expected, (shown, expected)
            text = labeling_screenshot(chrome, label_studio.url, project, first["id"], tmp_path / "labeling.png",
                                       scroll_to=lines[0])
    assert all(re.fullmatch(r"(Dogs|Cat|Car) 0\.\d\d", line) for line in lines), lines
    for line in lines:
        assert line in text, f"{line!r} is not on the annotator's screen"
