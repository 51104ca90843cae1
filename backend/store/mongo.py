"""The store in MongoDB (`--store mongodb://HOST:PORT/DB`), through pymongo.

For a deployment that already runs a MongoDB (a FiftyOne one, say) and would rather keep
the corrections, jobs and model index in one database than in a SQLite file. Collections
carry a `ram_` prefix so they never collide with FiftyOne's own. Nothing in the plugin reads
them.
"""
from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

from .base import Store
from .records import Correction, JobConflict, ModelRecord, StoredEmbedding, StoredPrediction, TrainJob

__all__ = ["MongoStore"]

_PREFIX = "ram_"


def _strip(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    doc = dict(doc)
    doc.pop("_id", None)
    doc.pop("active", None)
    return doc


class MongoStore(Store):
    def __init__(self, uri: str, *, timeout_ms: int = 5000) -> None:
        import pymongo
        from pymongo.uri_parser import parse_uri

        self.spec = uri
        self._pymongo = pymongo
        self._client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, tz_aware=False)
        db_name = parse_uri(uri).get("database") or "ram_annotate"
        db = self._client[db_name]
        self._predictions = db[_PREFIX + "predictions"]
        self._corrections = db[_PREFIX + "corrections"]
        self._jobs = db[_PREFIX + "jobs"]
        self._models = db[_PREFIX + "models"]
        self._projects = db[_PREFIX + "projects"]
        self._embeddings = db[_PREFIX + "embeddings"]
        asc, desc = pymongo.ASCENDING, pymongo.DESCENDING
        self._predictions.create_index([("project", asc), ("task_id", asc), ("model_version", asc)], unique=True)
        self._predictions.create_index([("project", asc), ("task_id", asc), ("created_at", desc)])
        self._corrections.create_index([("annotation_id", asc)], unique=True)
        self._corrections.create_index([("project", asc), ("updated_at", asc)])
        # At most one unfinished job per project, enforced by the database itself.
        self._jobs.create_index([("id", asc)], unique=True)
        self._jobs.create_index([("project", asc)], unique=True, name="one_active_job_per_project",
                                partialFilterExpression={"active": True})
        self._models.create_index([("project", asc), ("version", asc)], unique=True)
        self._embeddings.create_index([("index", asc), ("model_version", asc), ("key", asc)], unique=True)
        self._embeddings.create_index([("index", asc), ("model_version", asc), ("_id", asc)])

    def close(self) -> None:
        self._client.close()

    # -- predictions ----------------------------------------------------------------

    def record_prediction(self, prediction: StoredPrediction) -> None:
        doc = asdict(prediction) | {"created_at": time.time()}
        key = {"project": prediction.project, "task_id": prediction.task_id,
               "model_version": prediction.model_version}
        self._predictions.replace_one(key, doc, upsert=True)

    def latest_prediction(self, project: str, task_id: int) -> StoredPrediction | None:
        doc = self._predictions.find_one({"project": project, "task_id": task_id}, sort=[("created_at", -1)])
        if doc is None:
            return None
        doc = _strip(doc)
        doc.pop("created_at", None)
        return StoredPrediction(**doc)

    # -- corrections ----------------------------------------------------------------

    def _upsert_annotation(self, annotation_id: int, fields: dict[str, Any], predicted: StoredPrediction | None,
                           now: float) -> None:
        update: dict[str, Any] = fields | {"deleted": False, "updated_at": now}
        on_insert: dict[str, Any] = {"created_at": now}
        if predicted is not None:
            update |= {"model_version": predicted.model_version, "predicted": predicted.predicted,
                       "ram_tags": predicted.ram_tags}
            if predicted.image_path:
                update["image_path"] = predicted.image_path
            else:
                on_insert["image_path"] = None
        else:
            on_insert |= {"model_version": None, "predicted": None, "ram_tags": None, "image_path": None}
        self._corrections.update_one({"annotation_id": annotation_id},
                                     {"$set": update, "$setOnInsert": on_insert}, upsert=True)

    def mark_deleted(self, annotation_id: int, action: str) -> bool:
        res = self._corrections.update_one({"annotation_id": annotation_id},
                                           {"$set": {"deleted": True, "action": action, "updated_at": time.time()}})
        return res.matched_count > 0

    def set_image_path(self, annotation_id: int, image_path: str) -> None:
        self._corrections.update_one({"annotation_id": annotation_id}, {"$set": {"image_path": image_path}})

    def get(self, annotation_id: int) -> Correction | None:
        doc = _strip(self._corrections.find_one({"annotation_id": annotation_id}))
        return None if doc is None else Correction(**doc)

    def corrections(self, *, project: str | None = None, include_deleted: bool = False) -> list[Correction]:
        query: dict[str, Any] = {}
        if project is not None:
            query["project"] = project
        if not include_deleted:
            query["deleted"] = False
        return [Correction(**_strip(d)) for d in self._corrections.find(query).sort("annotation_id", 1)]

    def corrections_since(self, project: str, since: float) -> int:
        return self._corrections.count_documents({"project": project, "deleted": False, "updated_at": {"$gt": since}})

    # -- jobs -----------------------------------------------------------------------

    def create_job(self, job: TrainJob) -> TrainJob:
        try:
            self._jobs.insert_one(asdict(job) | {"active": job.active})
            return job
        except self._pymongo.errors.DuplicateKeyError:
            other = _strip(self._jobs.find_one({"project": job.project, "active": True}))
        if other is None:  # the other job finished in between
            return self.create_job(job)
        raise JobConflict(TrainJob(**other))

    def update_job(self, job_id: str, **fields: Any) -> TrainJob:
        fields = dict(fields, updated_at=time.time())
        if "state" in fields:
            fields["active"] = TrainJob(id="", project="", state=fields["state"], trigger="",
                                        created_at=0, updated_at=0).active
        doc = self._jobs.find_one_and_update({"id": job_id}, {"$set": fields},
                                             return_document=self._pymongo.ReturnDocument.AFTER)
        if doc is None:
            raise KeyError(job_id)
        return TrainJob(**_strip(doc))

    def get_job(self, job_id: str) -> TrainJob | None:
        doc = _strip(self._jobs.find_one({"id": job_id}))
        return None if doc is None else TrainJob(**doc)

    def jobs(self, *, project: str | None = None, limit: int = 100) -> list[TrainJob]:
        query = {} if project is None else {"project": project}
        return [TrainJob(**_strip(d)) for d in self._jobs.find(query).sort("created_at", -1).limit(limit)]

    # -- models ---------------------------------------------------------------------

    def record_model(self, record: ModelRecord) -> None:
        self._models.replace_one({"project": record.project, "version": record.version}, asdict(record), upsert=True)

    def models(self, project: str) -> list[ModelRecord]:
        return [ModelRecord(**_strip(d)) for d in self._models.find({"project": project}).sort("created_at", 1)]

    # -- project settings -----------------------------------------------------------

    def project_settings(self, project: str) -> dict[str, Any]:
        doc = self._projects.find_one({"project": project})
        return {} if doc is None else dict(doc.get("settings") or {})

    def set_project_settings(self, project: str, settings: dict[str, Any]) -> None:
        self._projects.replace_one({"project": project}, {"project": project, "settings": settings}, upsert=True)

    # -- search indexes -------------------------------------------------------------

    def record_embeddings(self, rows: Sequence[StoredEmbedding]) -> None:
        if not rows:
            return
        from bson import Binary

        now = time.time()
        ops = [self._pymongo.UpdateOne(
            {"index": r.index, "model_version": r.model_version, "key": r.key},
            {"$set": {"source": r.source, "vector": Binary(r.vector), "random_weights": r.random_weights,
                      "created_at": now}},
            upsert=True) for r in rows]
        self._embeddings.bulk_write(ops, ordered=False)

    def embedding_chunks(self, index: str, model_version: str, *, chunk_size: int = 1024
                         ) -> Iterator[list[StoredEmbedding]]:
        last = None
        while True:
            query: dict[str, Any] = {"index": index, "model_version": model_version}
            if last is not None:
                query["_id"] = {"$gt": last}
            docs = list(self._embeddings.find(query, sort=[("_id", 1)], limit=chunk_size))
            if not docs:
                return
            last = docs[-1]["_id"]
            yield [StoredEmbedding(index, d["key"], model_version, d["source"], bytes(d["vector"]),
                                   bool(d.get("random_weights"))) for d in docs]
