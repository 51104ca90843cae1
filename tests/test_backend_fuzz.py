"""No route answers 500, whatever it is sent.

The bodies are generated from the server's own OpenAPI spec (so a route added later
is fuzzed too): every field is either a value of its declared type or nested JSON junk,
objects get junk extra keys, and strings include what breaks parsers (lone
surrogates, NUL and control characters, broken IPv6 URLs, 70k-character URLs, huge
and negative 64-bit-overflowing integers). `/predict` tasks follow the `LsTask` schema
(with junk mixed in), so the fuzzing reaches the annotation and image-reference code
rather than stopping at the first type check. Every failure must be a 4xx in the
common error shape.

The JSON routes are derandomized (the same 150 examples every run): CI stays
reproducible, and those examples reach, on the code before issue 12, both the
SQLite-overflow and the annotation-type 500s.
"""
from __future__ import annotations

import json
from typing import Any

import pytest
from backend_fixtures import MULTI_CONFIG, TAXONOMY_CONFIG, client_with_image
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ram_model import TaggingEngine

# The fixtures backend_engine, controlled_thresholds and file_server come from these modules.

NASTY_STRINGS = [
    "", " ", "\x00", "\ud800", "a\udfffb", "\x07\x1b[31m", "\u202e", "null", "1e400", "-0",
    "http://[::1", "http://[zz]/a.png", "http://[fe80::1%25eth0]/a.png", "http://127.0.0.1:99999/a.png",
    "http://a\x00b/x.png", "http://user:pw@127.0.0.1/a.png", "/data/upload/../../etc/passwd",
    "/data/local-files/?d=%ff", "/tasks/1/presign/?fileuri=%ff", "s3://bucket/\ud800", "gs://b/a.png",
    "http://127.0.0.9:9/" + "a" * 70_000, "/data/upload/1/" + "%2e" * 100, "<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>",
    "<View>" * 100 + "</View>" * 100, MULTI_CONFIG, TAXONOMY_CONFIG,
]
URL_PREFIXES = ["http://", "https://[", "/data/upload/", "/data/local-files/?d=", "s3://", "/tasks/1/presign/?fileuri=",
                "http://127.0.0.9:9/", "//", "file:///"]
INT_EDGES = [0, -1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30, -(10**30)]

strings = st.one_of(
    st.sampled_from(NASTY_STRINGS),
    st.text(max_size=20),
    st.tuples(st.sampled_from(URL_PREFIXES), st.text(max_size=30)).map("".join),
)
integers = st.one_of(st.sampled_from(INT_EDGES), st.integers())
scalars = st.none() | st.booleans() | integers | st.floats(allow_nan=False, allow_infinity=False) | strings
junk = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(strings, children, max_size=4),
    max_leaves=16,
)


def mostly(shaped: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The declared shape three times in four, junk otherwise: junk at every level
    would stop almost every request at its first check."""
    return st.one_of(shaped, shaped, shaped, junk)


def _resolve(schema: dict, spec: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def from_schema(schema: dict, spec: dict, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values shaped like `schema`, with every field sometimes replaced by junk."""
    schema = _resolve(schema, spec)
    if depth > 6:
        return junk
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of([from_schema(s, spec, depth + 1) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "object" and "properties" in schema:
        fields = {name: mostly(from_schema(sub, spec, depth + 1)) for name, sub in schema["properties"].items()}
        required = set(schema.get("required", ()))
        shaped = st.fixed_dictionaries(
            {k: v for k, v in fields.items() if k in required},
            optional={k: v for k, v in fields.items() if k not in required},
        )
        extra = st.dictionaries(strings, junk, max_size=2)
        return st.tuples(shaped, extra).map(lambda pair: {**pair[1], **pair[0]})
    if kind == "object":
        return st.dictionaries(strings, junk, max_size=4)
    if kind == "array":
        items = schema.get("items") or {}
        return st.lists(from_schema(items, spec, depth + 1) if items else junk, max_size=3)
    if kind == "string":
        return strings
    if kind == "integer":
        return integers
    if kind == "number":
        return st.one_of(integers, st.floats(allow_nan=False, allow_infinity=False))
    if kind == "boolean":
        return st.booleans()
    return junk


GOOD_IMAGE = "/data/upload/1/a.png"
STORE_ACTIONS = ["ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"]


@pytest.fixture(scope="module")
def client(backend_engine: TaggingEngine, tmp_path_factory: pytest.TempPathFactory):
    # Label Studio is a local server with one real image, so tasks that name it are
    # predicted and stored (their ids reach SQLite).
    with client_with_image(tmp_path_factory.mktemp("fuzz"), backend_engine, GOOD_IMAGE, seed=3) as c:
        yield c


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict:
    spec = client.app.openapi()
    # `tasks` is declared as a list of anything (each task is checked on its own); fuzz it
    # with task-shaped values, whose `data.image` looks like a reference.
    schemas = spec["components"]["schemas"]
    schemas["PredictRequest"]["properties"]["tasks"]["items"] = {"$ref": "#/components/schemas/FuzzTask"}
    task = json.loads(json.dumps(schemas["LsTask"]))
    task["properties"]["data"] = {
        "type": "object", "required": ["image"],
        "properties": {"image": {"anyOf": [{"enum": [GOOD_IMAGE]}, {"enum": [GOOD_IMAGE]}, {"type": "string"}]}},
    }
    task["required"] = ["id", "data", "annotations"]
    schemas["FuzzTask"] = task
    # Valid configs and control names half of the time, so requests get past the
    # config and reach the tasks, annotations and webhook storage.
    configs = {"enum": [MULTI_CONFIG, TAXONOMY_CONFIG]}
    schemas["PredictRequest"]["properties"]["label_config"] = configs
    schemas["SetupRequest"]["properties"]["schema"] = configs
    schemas["WebhookProject"]["properties"]["label_config"] = configs
    schemas["WebhookRequest"]["properties"]["action"] = {"enum": STORE_ACTIONS}
    # Still sometimes junk (see `mostly`), but present, so the parts below them are reached.
    schemas["PredictRequest"]["required"] = ["tasks", "label_config", "project"]
    schemas["WebhookRequest"]["required"] = ["action", "project", "annotation", "task"]
    schemas["Annotation"]["required"] = ["id", "result", "task"]
    schemas["ResultItem"]["properties"]["from_name"] = {"enum": ["tags", "taxonomy"]}
    schemas["ResultValue"]["properties"]["choices"] = {"type": "array", "items": {"enum": ["Dogs", "Cat", "Car"]}}
    schemas["ResultValue"]["properties"]["taxonomy"] = {
        "type": "array", "items": {"type": "array", "items": {"enum": ["Animal", "Dog", "Vehicle"]}}
    }
    return spec


def _operations(spec: dict) -> list[tuple[str, str, str | None, dict | None]]:
    found = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            content = op.get("requestBody", {}).get("content", {})
            media, body = next(iter(content.items()), (None, None))
            found.append((method.upper(), path, media, body["schema"] if body else None))
    return found


def _check(response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert set(response.json()["error"]) >= {"code", "message"}, response.text


# Routes as the server declares them; a new route without a case here fails this test.
ROUTES = {
    ("GET", "/health"), ("GET", "/metrics"), ("GET", "/v1/info"),
    ("POST", "/setup"), ("POST", "/predict"), ("POST", "/webhook"), ("POST", "/v1/tag"),
    # training, versions and thresholds (issue 10)
    ("POST", "/train"), ("POST", "/job_status"), ("GET", "/versions"), ("POST", "/v1/train/{project}"),
    ("GET", "/v1/train/jobs"), ("GET", "/v1/train/jobs/{job_id}"), ("GET", "/v1/models/{project}"),
    ("POST", "/v1/models/{project}/activate"), ("POST", "/v1/models/{project}/rollback"),
    ("GET", "/v1/projects/{project}/thresholds"), ("PUT", "/v1/projects/{project}/thresholds"),
    ("POST", "/v1/projects/{project}/thresholds/tune"),
    # grounded detection (issue 19) and free-text search (issue 20)
    ("POST", "/v1/detect"), ("POST", "/v1/search"),
}
# Path parameters: valid ids and the kinds of junk a path segment can carry.
PATH_VALUES = ["1", "0", "18446744073709551617", "-1", "abc", "..", "%00", "a" * 300, "\u202e", "12ab34"]


def test_the_fuzzed_routes_are_all_the_routes(spec: dict):
    assert {(m, p) for m, p, _, _ in _operations(spec)} == ROUTES


@pytest.mark.parametrize("path", ["/setup", "/predict", "/webhook", "/v1/search"])
def test_json_routes_never_answer_500(client: TestClient, spec: dict, path: str):
    schema = next(body for m, p, _, body in _operations(spec) if p == path)
    bodies = mostly(from_schema(schema, spec))

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
    @given(body=bodies)
    def check(body: Any) -> None:
        # ensure_ascii keeps lone surrogates as \\ud800 escapes, as a careless client sends them.
        raw = json.dumps(body, ensure_ascii=True).encode()
        _check(client.post(path, content=raw, headers={"content-type": "application/json"}))

    check()


@pytest.mark.parametrize("route", ["/v1/tag", "/v1/detect"])
def test_upload_route_never_answers_500(client: TestClient, spec: dict, route: str):
    schema = _resolve(next(body for m, p, _, body in _operations(spec) if p == route), spec)
    fields = st.fixed_dictionaries({}, optional={
        name: st.lists(strings.filter(lambda s: "\ud800" not in s and "\udfff" not in s), max_size=2)
        for name in schema["properties"] if name != "images"
    })
    files = st.lists(st.tuples(strings.map(lambda s: s.encode("utf-8", "replace")[:50].decode("utf-8", "replace")),
                               st.binary(max_size=64)), max_size=2)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(form=fields, uploads=files)
    def check(form: dict[str, list[str]], uploads: list[tuple[str, bytes]]) -> None:
        multipart = [("images", (name or "x", data)) for name, data in uploads]
        _check(client.post(route, data=form, files=multipart or None))

    check()


@pytest.mark.parametrize("method,template", sorted(r for r in ROUTES if "{" in r[1] or r[1] in (
    "/train", "/job_status", "/versions", "/v1/train/jobs")))
def test_training_routes_never_answer_500(client: TestClient, spec: dict, method: str, template: str):
    schema = next((body for m, p, _, body in _operations(spec) if p == template and m == method), None)
    bodies = mostly(from_schema(schema, spec)) if schema is not None else junk

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
    @given(value=st.sampled_from(PATH_VALUES), body=bodies,
           params=st.dictionaries(st.sampled_from(["project", "limit"]),
                                  st.sampled_from(["1", "-1", "0", "abc", "", "1e400", str(2**64)]) | st.text(
                                      alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20), max_size=2))
    def check(value: str, body: Any, params: dict[str, str]) -> None:
        path = template.replace("{project}", value).replace("{job_id}", value)
        raw = json.dumps(body, ensure_ascii=True).encode()
        _check(client.request(method, path, params=params, content=raw, headers={"content-type": "application/json"}))

    check()


@pytest.mark.parametrize("path", ["/health", "/metrics", "/v1/info"])
def test_get_routes_ignore_junk_queries_and_bodies(client: TestClient, path: str):
    @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(params=st.dictionaries(st.text(max_size=5), st.text(max_size=10), max_size=3), body=junk)
    def check(params: dict[str, str], body: Any) -> None:
        raw = json.dumps(body).encode()
        response = client.request("GET", path, params=params, content=raw)
        assert response.status_code == 200, response.text

    check()
