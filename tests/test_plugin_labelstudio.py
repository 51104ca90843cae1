"""The exported Label Studio tasks import into a real Label Studio 1.23 with their RAM predictions,
and the reviews made on them load back into the dataset ("Load reviews").

Label Studio runs from its own virtualenv on loopback (see tests/labelstudio_server.py); the
export goes into its local-files document root, so the task image URLs must also serve.
"""
from __future__ import annotations

# ruff: noqa: I001  (fo_fixtures must be imported before fiftyone: it sets FiftyOne's config)

import json
from xml.sax.saxutils import quoteattr

import fo_fixtures as fx
import pytest
from labelstudio_server import LabelStudio

import fiftyone.operators as foo

from plugin.review_round.load_reviews import load_reviews
from plugin.review_round.params import LoadReviewsParams
from ram_client.labelstudio.client import LabelStudioClient
from ram_client.labelstudio.results import choice_item

pytestmark = [pytest.mark.fiftyone, pytest.mark.labelstudio]

LABELS = [["Dogs", "cat"], ["street_sign"], ["tree"], ["cat"]]


def _label_config(names: list[str]) -> str:
    choices = "".join(f"<Choice value={quoteattr(name)}/>" for name in names)
    return (f'<View><Image name="image" value="$image"/>'
            f'<Choices name="tags" toName="image" choice="multiple">{choices}</Choices></View>')


def test_exported_tasks_import_with_predictions_and_images_serve(
    label_studio: LabelStudio,  # noqa: F811  (the imported pytest fixture, requested by name)
    tiny_files,
    tmp_path,
) -> None:
    thresholds = fx.write_thresholds(tmp_path / "t.txt", {"dog": 0.0, "tree": 0.0})
    model = fx.model_params(tiny_files, thresholds=thresholds)
    dataset = fx.make_dataset("ls-export", fx.write_images(tmp_path / "imgs", len(LABELS), seed=4), labels=LABELS)
    foo.execute_operator(fx.TAG_URI, {"dataset": dataset.name, "params": {**model, "field": "ram"}})
    out = label_studio.local_files_root / "ram-export"
    foo.execute_operator(fx.EXPORT_URI, {"dataset": dataset.name, "params": {
        **model, "label_field": "ground_truth", "output_dir": str(out), "copy_images": True,
        "ls_document_root": str(label_studio.local_files_root)}})
    tasks = json.loads((out / "label_studio_tasks.json").read_text())

    project_labels = sorted({name for labels in LABELS for name in labels})
    with label_studio.client() as ls:
        project = ls.post("/api/projects", json={"title": "ram export", "label_config": _label_config(project_labels)})
        assert project.status_code == 201, project.text
        project_id = project.json()["id"]
        storage = ls.post("/api/storages/localfiles", json={"project": project_id, "path": str(out),
                                                             "use_blob_urls": False, "title": "export"})
        assert storage.status_code == 201, storage.text
        imported = ls.post(f"/api/projects/{project_id}/import", json=tasks)
        assert imported.status_code == 201, imported.text
        assert imported.json()["task_count"] == len(tasks) == 4
        assert imported.json()["prediction_count"] == 4

        listed = ls.get("/api/tasks", params={"project": project_id, "fields": "all"}).json()["tasks"]
        by_sample = {task["data"]["ram_sample_id"]: task for task in listed}
        for exported in tasks:
            task = by_sample[exported["data"]["ram_sample_id"]]
            (prediction,) = ls.get("/api/predictions", params={"task": task["id"]}).json()
            assert prediction["model_version"] == exported["predictions"][0]["model_version"]
            assert prediction["result"] == exported["predictions"][0]["result"]
            assert set(prediction["result"][0]["value"]["choices"]) == {"Dogs", "tree"}
            image = ls.get(task["data"]["image"])
            assert image.status_code == 200, image.text[:300]
            sample_id = exported["data"]["ram_sample_id"]
            assert image.content == (out / "images" / f"{sample_id}.jpg").read_bytes()

        # A reviewer answers each task; the last one is skipped.
        reviewed = {}
        for n, task in enumerate(sorted(listed, key=lambda t: t["id"])):
            sample_id = task["data"]["ram_sample_id"]
            labels = ["tree"] if n % 2 else ["Dogs", "cat"]
            answer = ls.post(f"/api/tasks/{task['id']}/annotations", json={
                "result": [choice_item("tags", "image", "choices", labels)], "was_cancelled": n == 3})
            assert answer.status_code == 201, answer.text
            if n != 3:
                reviewed[sample_id] = sorted(labels)

    with LabelStudioClient(label_studio.url, label_studio.token) as client:
        loaded = load_reviews(dataset, LoadReviewsParams(label_field="ground_truth", project_id=project_id), client)
    # The export carries each sample's labels as an annotation, so the skipped task still has
    # one that counts: its labels come back as they went out.
    assert (loaded.tasks, loaded.reviewed, loaded.written) == (4, 4, 4)
    dataset.reload()
    got = {sid: sorted(c.label for c in label.classifications)
           for sid, label in zip(dataset.values("id"), dataset.values("ground_truth_reviewed")) if label is not None}
    exported_labels = dict(zip(dataset.values("id"), (sorted(set(labels)) for labels in LABELS)))
    assert got == {**exported_labels, **reviewed}
    dataset.delete()
