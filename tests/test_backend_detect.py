"""/v1/detect and RamClient.detect against a real server (uvicorn) holding RAM + a tiny random
detector and segmenter, loaded once and shared by every request."""
from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from backend_fixtures import FIRING, image_bytes, make_app, make_settings, running_server  # noqa: E402

from ram_client import RamClient, RamServerError  # noqa: E402
from ram_model import TaggingEngine, ThresholdPolicy  # noqa: E402
from ram_model.grounding import decode_rle  # noqa: E402


@pytest.fixture(scope="module")
def grounding(backend_engine: TaggingEngine):
    from backend.serving.grounding import GroundingService
    from ram_model.grounding import GroundedLabeler, load_detector, load_segmenter

    detector = load_detector("random:tiny", words=backend_engine.vocab.names)
    return GroundingService(GroundedLabeler(backend_engine, detector, load_segmenter("random:tiny"),
                                            ThresholdPolicy()))


@pytest.fixture(scope="module")
def server(backend_engine: TaggingEngine, grounding, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("detect")
    root = tmp / "images"
    root.mkdir()
    (root / "a.png").write_bytes(image_bytes(3, size=(96, 64)))
    from backend.app import create_app

    app = create_app(make_settings(tmp, allowed_roots=[str(root)]), engine=backend_engine, policy=ThresholdPolicy(),
                     grounding=grounding)
    with running_server(app) as url:
        yield url, root


def test_detect_with_masks_through_the_client(server, grounding) -> None:
    url, root = server
    inputs = [image_bytes(0), root / "a.png", b"not an image"]
    with RamClient(url, chunk_size=2) as client:
        results = client.detect(inputs, masks=True)
    assert [r["ok"] for r in results] == [True, True, False]
    assert "not a recognised image" in results[2]["error"]
    for r in results[:2]:
        assert set(r["tags"]) == set(FIRING)  # the controlled thresholds fire exactly these
        assert r["detections"], "the tiny detector's boxes pass the recipe's thresholds"
        for d in r["detections"]:
            assert d["label"] in FIRING and len(d["box"]) == 4
            assert decode_rle(d["mask"]).shape == (r["height"], r["width"])
    # The same server answers without masks, and with a threshold no tag passes: no boxes.
    with RamClient(url) as client:
        (plain,) = client.detect([image_bytes(0)])
        (none,) = client.detect([image_bytes(0)], threshold=1.0)
    assert plain["detections"] and all("mask" not in d for d in plain["detections"])
    assert none["ok"] and none["tags"] == [] and none["detections"] == []


def test_detect_needs_a_detector_and_an_input(backend_engine: TaggingEngine, tmp_path, server) -> None:
    url, _ = server
    with RamClient(url) as client, pytest.raises(RamServerError) as e:
        client._check(client._http.post("/v1/detect", data={"masks": "false"}))
    assert e.value.status_code == 400
    app = make_app(tmp_path, backend_engine)  # no --detector
    with running_server(app) as plain_url, RamClient(plain_url) as client, pytest.raises(RamServerError) as e:
        client.detect([image_bytes(0)])
    assert e.value.status_code == 409 and "--detector" in str(e.value)


def test_segmenter_without_detector_is_refused(tmp_path) -> None:
    from backend.serving.grounding import build_grounding
    from backend.errors import BackendError

    with pytest.raises(BackendError, match="--segmenter needs --detector"):
        build_grounding(make_settings(tmp_path, segmenter="random:tiny"), None, ThresholdPolicy())


def test_region_controls_map_like_choices_and_region_only_configs(backend_engine: TaggingEngine) -> None:
    from backend.errors import LabelConfigError
    from backend.labelstudio.project import build_project_model

    config = """<View><Image name="image" value="$photo"/>
      <RectangleLabels name="box" toName="image">
        <Label value="Dog" alias="d"/><Label value="Kitty" predicted_values="cat"/><Label value="Unicorn"/>
      </RectangleLabels></View>"""
    vocab = backend_engine.vocab
    common = dict(ram_names=vocab.names, ram_names_zh=vocab.names_zh, ram_thresholds=vocab.thresholds,
                  engine_version="v")
    with pytest.raises(LabelConfigError, match="need a server started with --detector"):
        build_project_model(config, **common)
    project = build_project_model(config, **common, detector_version="det-1")
    (region,) = project.regions
    assert project.controls == () and region.data_key == "photo"
    assert dict(region.labels) == {"dog": "d", "cat": "Kitty"} and region.unmapped == ("Unicorn",)
    assert set(project.ram_classes) == {vocab.index_of("dog"), vocab.index_of("cat")}
    assert build_project_model(config, **common, detector_version="det-2").model_version != project.model_version


def test_region_only_project_through_predict(backend_engine: TaggingEngine, grounding, file_server, tmp_path) -> None:
    """/setup reports the region control; /predict fills it (boxes mapped to the labels), a label that maps
    onto no tag adds nothing, and a config whose labels all map to nothing gets no regions."""
    from fastapi.testclient import TestClient

    from backend.app import create_app
    from backend_fixtures import Route

    token = "b" * 40
    file_server.routes["/data/upload/1/a.png"] = Route(body=image_bytes(0), require_auth=f"Token {token}")
    settings = make_settings(tmp_path, label_studio_url=file_server.url, label_studio_api_key=token)
    app = create_app(settings, engine=backend_engine, policy=ThresholdPolicy(), grounding=grounding)
    config = """<View><Image name="image" value="$image"/>
      <RectangleLabels name="box" toName="image"><Label value="Dog"/><Label value="Unicorn"/></RectangleLabels>
    </View>"""
    nothing = config.replace('<Label value="Dog"/>', "")
    task = {"id": 1, "data": {"image": "/data/upload/1/a.png"}, "project": 7}
    with TestClient(app) as client:
        setup = client.post("/setup", json={"project": "7.1", "schema": config}).json()
        assert setup["controls"] == [{"from_name": "box", "to_name": "image", "type": "rectanglelabels",
                                      "labels": 2, "mapped": 1, "unmapped": ["Unicorn"], "open_set": []}]
        answer = client.post("/predict", json={"tasks": [task], "label_config": config, "project": "7.1"})
        assert answer.status_code == 200, answer.text
        (pred,) = answer.json()["results"]
        assert pred["result"] and {r["value"]["rectanglelabels"][0] for r in pred["result"]} == {"Dog"}
        assert 0 < pred["score"] <= 1
        answer = client.post("/predict", json={"tasks": [task], "label_config": nothing, "project": "8.1"})
        assert answer.status_code == 200, answer.text
        (pred,) = answer.json()["results"]
        assert pred.get("result", []) == []
