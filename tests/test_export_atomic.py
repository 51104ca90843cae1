"""A kill -9 at any point of an export leaves the previous export whole or the new one whole,
images included, and the next export removes what the crash left (issue 12, item 5).

The transaction is driven by real processes killed with SIGKILL at named points
(`plugin.jobs.export_commit.crash_point`): a small worker for every point of the commit,
and the real `ram-annotate fiftyone export` for the points of a FiftyOne export.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from plugin.jobs.export_commit import STORE

REPO = Path(__file__).resolve().parents[1]
NAMES = ("ram_finetune.json", "label_studio_tasks.json", "images")

# Writes export `label` with `count` images through the transaction, as export.py does.
WORKER = r"""
import json, sys
from pathlib import Path
from plugin.jobs.export_commit import ExportTransaction, crash_point
out, label, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
transaction = ExportTransaction(out, ["ram_finetune.json", "label_studio_tasks.json", "images"])
folder = transaction.begin()
(folder / "images").mkdir()
names = []
for i in range(count):
    (folder / "images" / f"{i}.jpg").write_bytes(f"{label}-{i}".encode() * 50)
    names.append(f"images/{i}.jpg")
    crash_point(f"image:{i + 1}")
(folder / "ram_finetune.json").write_text(json.dumps({"label": label, "images": names}))
(folder / "label_studio_tasks.json").write_text(json.dumps({"label": label, "count": count}))
transaction.commit()
"""


def _run_worker(out: Path, label: str, count: int, kill_at: str | None = None) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("RAM_ANNOTATE_TEST_KILL_AT", None)
    if kill_at:
        env["RAM_ANNOTATE_TEST_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-c", WORKER, str(out), label, str(count)], env=env,
                          timeout=120).returncode


def _legacy_export(out: Path, label: str, count: int) -> None:
    """The layout earlier versions wrote: real files and a real images folder."""
    (out / "images").mkdir(parents=True)
    names = []
    for i in range(count):
        (out / "images" / f"{i}.jpg").write_bytes(f"{label}-{i}".encode() * 50)
        names.append(f"images/{i}.jpg")
    (out / "ram_finetune.json").write_text(json.dumps({"label": label, "images": names}))
    (out / "label_studio_tasks.json").write_text(json.dumps({"label": label, "count": count}))


def _visible_export(out: Path) -> str | None:
    """Which export a reader sees: its label if it is whole, None if there is none; fails on a mix."""
    present = [(out / n).exists() for n in NAMES]
    if not any(present):
        return None
    assert all(present), f"part of an export is missing: {dict(zip(NAMES, present))}"
    finetune = json.loads((out / "ram_finetune.json").read_text())
    tasks = json.loads((out / "label_studio_tasks.json").read_text())
    label = finetune["label"]
    assert tasks == {"label": label, "count": len(finetune["images"])}, (finetune, tasks)
    for i, name in enumerate(finetune["images"]):
        assert (out / name).read_bytes() == f"{label}-{i}".encode() * 50, name
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(Path(n).name for n in finetune["images"])
    return label


def _assert_no_leftovers(out: Path) -> None:
    store = sorted(p.name for p in (out / STORE).iterdir())
    assert len(store) == 3 and store[0] == "current" and store[1].startswith("gen-") and store[2] == "lock", store
    assert sorted(p.name for p in out.iterdir()) == sorted([STORE, *NAMES])


@pytest.mark.parametrize("kill_at, expected", [
    ("image:2", "old"), ("staged", "old"), ("linked", "old"), ("switched", "new"),
])
def test_a_killed_export_leaves_one_whole_export(kill_at: str, expected: str, tmp_path: Path) -> None:
    out = tmp_path / "export"
    assert _run_worker(out, "old", 3) == 0
    assert _visible_export(out) == "old"
    assert _run_worker(out, "new", 5, kill_at=kill_at) == -signal.SIGKILL
    assert _visible_export(out) == expected
    assert _run_worker(out, "newer", 4) == 0  # the next export clears what the crash left
    assert _visible_export(out) == "newer"
    _assert_no_leftovers(out)


@pytest.mark.parametrize("kill_at", ["adopted", "linked:ram_finetune.json", "linked:images", "linked", "switched"])
def test_a_killed_export_over_an_earlier_versions_layout_leaves_one_whole_export(kill_at: str,
                                                                                  tmp_path: Path) -> None:
    out = tmp_path / "export"
    _legacy_export(out, "old", 3)
    (out / ".ram-export-k2j3h4").mkdir()  # the staging folder an earlier version left when killed
    (out / ".ram-export-k2j3h4" / "0.jpg").write_bytes(b"half")
    assert _run_worker(out, "new", 2, kill_at=kill_at) == -signal.SIGKILL
    assert _visible_export(out) == ("new" if kill_at == "switched" else "old")
    assert _run_worker(out, "newer", 4) == 0
    assert _visible_export(out) == "newer"
    _assert_no_leftovers(out)


def test_the_first_export_killed_leaves_no_export(tmp_path: Path) -> None:
    out = tmp_path / "export"
    assert _run_worker(out, "new", 2, kill_at="linked") == -signal.SIGKILL
    assert _visible_export(out) is None
    assert _run_worker(out, "new", 2) == 0
    assert _visible_export(out) == "new"
    _assert_no_leftovers(out)
