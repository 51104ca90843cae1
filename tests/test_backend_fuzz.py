"""Arbitrary JSON thrown at the JSON routes never produces a 500: every failure is a
typed 4xx with the common error shape, and tasks that cannot be served carry errors."""
from __future__ import annotations

import pytest
from backend_fixtures import MULTI_CONFIG, make_app
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ram_model import TaggingEngine

# The fixtures backend_engine, controlled_thresholds and file_server come from these modules.

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
task_like = st.fixed_dictionaries(
    {"id": st.one_of(st.integers(), st.text(max_size=5), st.none()),
     "data": st.one_of(json_values, st.fixed_dictionaries({"image": json_values}))},
    optional={"annotations": json_values},
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"tasks": st.lists(task_like, max_size=3)},
                          optional={"label_config": st.one_of(st.just(MULTI_CONFIG), st.text(max_size=30)),
                                    "project": json_values, "params": json_values}),
    st.fixed_dictionaries({"action": st.text(max_size=25)},
                          optional={"annotation": json_values, "task": json_values, "project": json_values,
                                    "annotations": json_values}),
)



@pytest.fixture(scope="module")
def client(backend_engine: TaggingEngine, tmp_path_factory: pytest.TempPathFactory):
    app = make_app(tmp_path_factory.mktemp("fuzz"), backend_engine, label_studio_url="http://127.0.0.1:9")
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize("path", ["/predict", "/setup", "/webhook"])
def test_no_server_errors(client: TestClient, path: str):
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies)
    def check(body) -> None:
        response = client.post(path, json=body)
        assert response.status_code < 500, (body, response.text)
        if response.status_code >= 400:
            assert set(response.json()["error"]) >= {"code", "message"}

    check()
