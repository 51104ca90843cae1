"""A whole active-learning round through a real Label Studio, with real FiftyOne: tag, send a batch,
annotate it through Label Studio's API, load the reviews, tune thresholds, fine-tune, re-tag.

Every step is run twice (the second run must change nothing), and the send step is killed
with SIGKILL right after Label Studio created a chunk of tasks, before FiftyOne recorded
them: the rerun must finish the round without creating a task twice.
"""
from __future__ import annotations

# ruff: noqa: I001  (fo_fixtures must be imported before fiftyone: it sets FiftyOne's config)

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import fo_fixtures as fx
import pytest
from labelstudio_server import LabelStudio

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators.executor import ExecutionRunState
from ram_model import EngineConfig, TaggingEngine
from ram_model.cli.main import main

pytestmark = [pytest.mark.fiftyone, pytest.mark.labelstudio]

PLUGIN = fx.PLUGIN_NAME
LABELS = [["dog"], ["cat"], ["dog", "tree"], ["car"], [], None, ["tree"], ["dog", "cat"]] * 2 + [["car"], None]
TIMES: dict[str, float] = {}


def _ls_tasks(ls, project_id: int) -> list[dict]:
    tasks, page = [], 1
    while True:
        answer = ls.get("/api/tasks", params={"project": project_id, "page": page, "page_size": 100})
        if answer.status_code == 404:
            return tasks
        chunk = answer.json()["tasks"]
        tasks += chunk
        if len(chunk) < 100:
            return tasks
        page += 1


def _execute(uri: str, dataset: fo.Dataset, params: dict) -> dict:
    started = time.perf_counter()
    result = foo.execute_operator(f"{PLUGIN}/{uri}", {"dataset": dataset.name, "params": params})
    TIMES[uri] = TIMES.get(uri, 0.0) + time.perf_counter() - started
    assert result.error is None, result.error_message
    return result.result


@pytest.fixture()
def round_setup(label_studio: LabelStudio, tiny_files, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    monkeypatch.setenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", str(label_studio.local_files_root))
    monkeypatch.setenv("RAM_ANNOTATE_WORK_DIR", str(tmp_path / "work"))
    # 9 images Label Studio can serve from its document root, 9 it cannot (uploaded): a batch
    # of 10 holds both kinds.
    inside = fx.write_images(label_studio.local_files_root / f"round-{tmp_path.name}", 9, seed=11)
    outside = fx.write_images(tmp_path / "outside", 9, seed=12)
    dataset = fx.make_dataset(f"round-{os.getpid()}-{time.time_ns()}", inside + outside, labels=LABELS)
    thresholds = fx.write_thresholds(tmp_path / "t.txt", {"dog": 0.2, "cat": 0.12, "tree": 0.09, "car": 0.1},
                                     default=0.5)
    model = fx.model_params(tiny_files, thresholds=thresholds)
    yield dataset, model
    dataset.delete()


def _send_killed_after_first_import(dataset: fo.Dataset, tmp_path: Path) -> int:
    """Run `fiftyone send-review` in a child that SIGKILLs itself right after the first task import."""
    script = tmp_path / "killed_send.py"
    script.write_text(
        "import os, signal, sys\n"
        "import fo_fixtures\n"
        "from ram_client.labelstudio.client import LabelStudioClient\n"
        "real = LabelStudioClient.import_tasks\n"
        "def import_then_die(self, project_id, tasks):\n"
        "    real(self, project_id, tasks)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "LabelStudioClient.import_tasks = import_then_die\n"
        "from ram_model.cli.main import main\n"
        f"sys.exit(main(['fiftyone', 'send-review', '--dataset', {dataset.name!r}, '--label-field', 'ground_truth',"
        " '--batch-size', '6', '--new-round', '--no-progress']))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fx.REPO_ROOT), str(fx.REPO_ROOT / "tests")])}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    return proc.returncode


def test_a_whole_round_through_label_studio(round_setup, label_studio: LabelStudio, tmp_path,  # noqa: F811
                                            capsys, monkeypatch) -> None:
    dataset, model = round_setup
    round_started = time.perf_counter()
    _execute("tag_with_ram", dataset, {**model, "field": "ram", "label_field": "ground_truth"})

    # --- send: 10 samples, some served from local files, some uploaded -----------------------
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.personal_access_token())
    send = {"label_field": "ground_truth", "ram_field": "ram", "batch_size": 10}
    sent = _execute("send_review_batch", dataset, send)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    assert (sent["round"], sent["selected"], sent["sent"]) == (1, 10, 10)
    assert sent["local_files"] >= 1 and sent["uploaded"] >= 1 and sent["local_files"] + sent["uploaded"] == 10
    again = _execute("send_review_batch", dataset, send)
    assert (again["round"], again["sent"]) == (1, 0) and "still open" in again["message"]

    with label_studio.client() as ls:
        tasks = _ls_tasks(ls, sent["project_id"])
        assert len(tasks) == 10
        by_sample = {t["data"]["ram_sample_id"]: t for t in tasks}
        marked = dataset.exists("ground_truth_ls_task")
        assert sorted(by_sample) == sorted(marked.values("id"))
        assert set(marked.values("ground_truth_ls_round")) == {1}
        project = ls.get(f"/api/projects/{sent['project_id']}").json()
        assert all(f'value="{name}"' in project["label_config"] for name in ("car", "cat", "dog", "tree"))
        for task in tasks:
            assert task["data"]["ram_round"] == 1 and task["total_predictions"] == 1
            image = ls.get(task["data"]["image"])
            assert image.status_code == 200 and image.content == Path(
                dataset[task["data"]["ram_sample_id"]].filepath).read_bytes()
        (prediction,) = ls.get("/api/predictions", params={"task": tasks[0]["id"]}).json()
        assert prediction["model_version"] == dataset.first()["ram"]["model_version"]
        assert 0.0 <= prediction["score"] <= 1.0

        # --- annotate through Label Studio's API ---------------------------------------------
        choices = {}
        for i, task in enumerate(tasks):
            chosen = [["dog"], ["cat", "tree"], [], ["car", "dog"]][i % 4]
            answer = ls.post(f"/api/tasks/{task['id']}/annotations", json={"result": [
                {"from_name": "tags", "to_name": "image", "type": "choices", "value": {"choices": chosen}}]})
            assert answer.status_code == 201, answer.text
            choices[task["data"]["ram_sample_id"]] = (answer.json()["id"], sorted(chosen))

        loaded = _execute("load_label_studio_reviews", dataset, {"label_field": "ground_truth"})
        assert (loaded["reviewed"], loaded["written"], loaded["rounds"]) == (10, 10, {"1": 10})
        reviewed = {s.id: s.ground_truth_reviewed for s in dataset.exists("ground_truth_reviewed")}
        assert {sid: sorted(c.label for c in label.classifications) for sid, label in reviewed.items()} == \
            {sid: labels for sid, (_, labels) in choices.items()}
        some = next(iter(reviewed.values()))
        assert some.reviewer == "ram-tests@example.com" and some.reviewed_at is not None
        report = {row["label"]: row for row in loaded["classes"]}
        suggested = Counter(n for t in tasks for n in t["data"]["ram_suggestion"])
        for name, row in report.items():
            assert row["accepted"] + row["removed"] == suggested[name]
        assert main(["fiftyone", "load-reviews", "--dataset", dataset.name, "--label-field", "ground_truth",
                     "--no-progress"]) == 0  # the same job from the command line
        again = json.loads(capsys.readouterr().out)
        assert (again["written"], again["unchanged"], again["cleared"]) == (0, 10, 0)

        # an updated and a deleted annotation
        (first_id, (first_annotation, _)), (second_id, (second_annotation, _)) = list(choices.items())[:2]
        assert ls.patch(f"/api/annotations/{first_annotation}", json={"result": [
            {"from_name": "tags", "to_name": "image", "type": "choices", "value": {"choices": ["tree"]}}]}
        ).status_code == 200
        assert ls.delete(f"/api/annotations/{second_annotation}").status_code == 204
        changed = _execute("load_label_studio_reviews", dataset, {"label_field": "ground_truth"})
        assert (changed["written"], changed["cleared"], changed["unchanged"]) == (1, 1, 8)
        assert [c.label for c in dataset[first_id].ground_truth_reviewed.classifications] == ["tree"]
        assert dataset[second_id].ground_truth_reviewed is None

        # --- round 2, killed right after Label Studio created its first chunk --------------------
        assert _send_killed_after_first_import(dataset, tmp_path) == -signal.SIGKILL
        assert len(_ls_tasks(ls, sent["project_id"])) == 16  # created, but not recorded in FiftyOne
        assert len(dataset.match(fo.ViewField("ground_truth_ls_round") == 2)) == 0
        resumed = _execute("send_review_batch", dataset, {**send, "batch_size": 6})
        assert (resumed["round"], resumed["selected"], resumed["sent"]) == (2, 6, 0)
        tasks = _ls_tasks(ls, sent["project_id"])
        ids = [t["data"]["ram_sample_id"] for t in tasks]
        assert len(ids) == len(set(ids)) == 16  # nothing sent twice
        assert len(dataset.match(fo.ViewField("ground_truth_ls_round") == 2)) == 6

    # --- tune thresholds and fine-tune on the reviews, re-tag with each ------------------------
    tune = {**model, "reviewed_field": "ground_truth_reviewed", "min_count": 1, "retag_field": "ram_tuned"}
    tuned = _execute("tune_ram_thresholds", dataset, tune)
    assert tuned["images"] == 9 and tuned["retag"]["tagged"] == len(dataset)
    assert Path(tuned["thresholds"]).is_file() and tuned["metrics"][0]["base"] is not None
    assert _execute("tune_ram_thresholds", dataset, tune)["thresholds"] == tuned["thresholds"]

    train = {**model, "reviewed_field": "ground_truth_reviewed", "epochs": 1, "finetune_batch_size": 4,
             "val_split": 0.3, "num_workers": 0, "no_augment": True, "retag_field": "ram_v2"}
    trained = _execute("finetune_ram", dataset, train)
    assert trained["trained"] and trained["retag"]["tagged"] == len(dataset)
    assert {row["metric"] for row in trained["metrics"]} >= {"micro_f1", "macro_f1"}
    new_model = TaggingEngine.from_config(EngineConfig(checkpoint=trained["model_uri"], device="cpu",
                                                       precision="fp32"))  # as the round's model params
    assert new_model.model_version == trained["retag"]["model_version"]
    versions = set(dataset.values("ram_v2.model_version"))
    assert versions == {trained["retag"]["model_version"]} and versions != set(dataset.values("ram.model_version"))
    operation = fx.run_delegated(f"{PLUGIN}/finetune_ram", dataset, train)  # as the App's "Schedule" does
    assert operation.run_state == ExecutionRunState.COMPLETED, operation.result
    repeated = operation.result.result
    assert not repeated["trained"] and repeated["version"] == trained["version"]
    assert repeated["retag"]["tagged"] == 0 and repeated["retag"]["skipped"] == len(dataset)
    TIMES["round"] = time.perf_counter() - round_started
    with capsys.disabled():
        print("\nreview round wall time (s):", {k: round(v, 1) for k, v in TIMES.items()})
