"""The FiftyOne tag operator and `ram-annotate fiftyone tag` with "run on a Ray cluster": the same labels
as the in-process run on a real FiftyOne dataset (private mongod, tests/fo_fixtures.py), bitwise in fp32."""
from __future__ import annotations

# ruff: noqa: I001  (fo_fixtures must be imported before fiftyone: it sets FiftyOne's config)

import json
from pathlib import Path

import fo_fixtures as fx
import pytest

import fiftyone as fo
import fiftyone.operators as foo
from ram_model.cli.main import main

pytestmark = [pytest.mark.fiftyone, pytest.mark.ray]


@pytest.fixture(scope="module")
def model(tiny_files, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    thresholds = fx.write_thresholds(tmp_path_factory.mktemp("thr") / "t.txt", {"dog": 0.0, "cat": 0.0}, default=0.3)
    return {**fx.model_params(tiny_files, thresholds=thresholds), "precision": "fp32"}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    paths = fx.write_images(tmp_path_factory.mktemp("ray_fo_images"), 5)
    bad = paths[0].parent / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    return [*paths, bad]


def _labels(ds: fo.Dataset, field: str) -> list:
    return [None if c is None else [(x.label, x.confidence) for x in c.classifications] for c in ds.values(field)]


def test_operator_and_cli_on_ray_write_what_the_in_process_run_writes(ray_session, model, images, capsys) -> None:
    import torch

    ds = fx.make_dataset("ray-fo-parity", images)
    try:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # what a 1-CPU actor runs with (see tests/test_ray_tag.py)
        try:
            local = foo.execute_operator(fx.TAG_URI, {"dataset": ds.name, "params": {**model, "field": "local"}}).result
        finally:
            torch.set_num_threads(threads)
        on_ray = foo.execute_operator(fx.TAG_URI, {"dataset": ds.name,
                                                   "params": {**model, "field": "ray", "ray": "auto"}}).result
        assert (local["tagged"], local["failed"]) == (on_ray["tagged"], on_ray["failed"]) == (5, 1)
        assert _labels(ds, "ray") == _labels(ds, "local")
        assert ds.values("ray_error") == ds.values("local_error")  # the same per-image error, the rest clear
        assert sum(e is not None for e in ds.values("ray_error")) == 1
        flags = []
        for key, value in model.items():
            flags += [f"--{key.replace('_', '-')}", value]
        code = main(["fiftyone", "tag", "--dataset", ds.name, "--field", "ray_cli", *flags, "--ray", "auto"])
        out = capsys.readouterr().out
        assert code == 0, out
        assert json.loads(out)["tagged"] == 5
        assert _labels(ds, "ray_cli") == _labels(ds, "local")
        # A rerun skips what is done (the resume rule of the in-process job)
        again = foo.execute_operator(fx.TAG_URI, {"dataset": ds.name,
                                                  "params": {**model, "field": "ray", "ray": "auto"}}).result
        assert again["skipped"] == 5 and again["tagged"] == 0
    finally:
        ds.delete()
