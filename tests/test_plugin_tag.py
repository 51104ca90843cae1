"""Tag with RAM, run through FiftyOne's own operator execution on real datasets and a real tiny model."""
from __future__ import annotations

# ruff: noqa: I001  (fo_fixtures must be imported before fiftyone: it sets FiftyOne's config)

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fo_fixtures as fx
from plugin_fixtures import FIRED
import numpy as np
import pytest

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone import ViewField as F
from fiftyone.operators.executor import ExecutionError, ExecutionRunState
from ram_model import TaggingEngine

pytestmark = pytest.mark.fiftyone


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return fx.write_images(tmp_path_factory.mktemp("tag_images"), 6)


@pytest.fixture()
def dataset(request, images) -> fo.Dataset:
    labels = [["dog"], ["cat", "car"], None, ["Dogs"], [], ["tree"]]
    ds = fx.make_dataset(f"tag-{request.node.name}"[:60], images, labels=labels)
    yield ds
    ds.delete()


def _tag(dataset: fo.Dataset, params: dict, **ctx) -> dict:
    return foo.execute_operator(fx.TAG_URI, {"dataset": dataset.name, "params": params, **ctx}).result


def _expected(engine: TaggingEngine, paths: list[str]) -> list[dict[str, float]]:
    return [{engine.vocab.names[i]: float(p.probs[i]) for i in range(len(engine.vocab)) if engine.vocab.names[i] in FIRED}
            for p in engine.predict(paths)]


def test_immediate_run_writes_classifications_with_confidences(dataset, fired_params, fired_engine) -> None:
    result = _tag(dataset, {**fired_params, "field": "ram", "chinese_names": True})
    assert (result["tagged"], result["skipped"], result["failed"]) == (6, 0, 0)
    written = dataset.values("ram")
    for label, expected in zip(written, _expected(fired_engine, dataset.values("filepath"))):
        assert isinstance(label, fo.Classifications)
        got = {c.label: c.confidence for c in label.classifications}
        assert got.keys() == expected.keys()
        np.testing.assert_allclose([got[k] for k in FIRED], [expected[k] for k in FIRED], rtol=1e-5)
        assert [c.confidence for c in label.classifications] == sorted(got.values(), reverse=True)
        assert label.model_version == fired_engine.model_version
        vocab = fired_engine.vocab
        assert {c.name_zh for c in label.classifications} == {vocab.names_zh[vocab.index_of(n)] for n in FIRED}


def test_run_record_holds_model_version_checkpoint_and_thresholds(dataset, fired_params, fired_engine,
                                                                   tiny_files) -> None:
    _tag(dataset, {**fired_params, "field": "ram", "top_k": 5})
    info = dataset.get_run_info("ram_tag_ram")
    assert info.config.model_version == fired_engine.model_version
    assert info.config.checkpoint == str(tiny_files.checkpoint)
    assert info.config.top_k == 5 and info.config.where == "in-process"
    results = dataset.load_run_results("ram_tag_ram", cache=False)
    assert results.vocabulary == fired_engine.vocab.to_dict()
    np.testing.assert_allclose(results.thresholds, fired_engine.vocab.thresholds)


def test_label_field_stores_scores_of_the_mapped_classes_only(dataset, fired_params, fired_engine) -> None:
    result = _tag(dataset, {**fired_params, "field": "ram", "label_field": "ground_truth"})
    config = dataset.get_run_info("ram_tag_ram").config
    # "Dogs" maps to dog by plural, "car"/"cat"/"tree" exactly; the field holds nothing unmappable here.
    assert config.score_labels == ["Dogs", "car", "cat", "dog", "tree"] and result["unmapped_labels"] == []
    probs = np.stack([p.probs for p in fired_engine.predict(dataset.values("filepath"))])
    columns = [fired_engine.vocab.index_of(n) for n in ("dog", "car", "cat", "dog", "tree")]
    np.testing.assert_allclose(np.array(dataset.values("ram_scores")), probs[:, columns], atol=1e-5)


def test_rerun_skips_samples_done_by_the_same_model_version(dataset, fired_params) -> None:
    _tag(dataset, {**fired_params, "field": "ram"})
    before = {s.id: [c.id for c in s.ram.classifications] for s in dataset}
    again = _tag(dataset, {**fired_params, "field": "ram"})
    assert (again["tagged"], again["skipped"]) == (0, 6)
    assert {s.id: [c.id for c in s.ram.classifications] for s in dataset} == before


def test_other_settings_never_mix_into_the_same_field(dataset, fired_params, tiny_files) -> None:
    _tag(dataset, {**fired_params, "field": "ram"})
    fx.assert_failed(_tag(dataset, {**fired_params, "field": "ram", "threshold": 0.5}), "other settings")
    other_model = {**fired_params, "thresholds": str(tiny_files.thresholds)}  # another model_version
    fx.assert_failed(_tag(dataset, other_model), "model_version|thresholds_digest")
    result = _tag(dataset, {**fired_params, "field": "ram", "threshold": 1.0, "overwrite": True})
    assert result["tagged"] == 6
    assert dataset.count("ram.classifications") == 0  # nothing fires at 1.0, and nothing old is left
    assert dataset.get_run_info("ram_tag_ram").config.threshold == 1.0


def test_a_field_the_user_owns_is_refused_in_the_form(dataset, fired_params) -> None:
    with pytest.raises(ExecutionError, match="not written by Tag with RAM"):
        _tag(dataset, {**fired_params, "field": "ground_truth"})
    assert dataset.distinct("ground_truth.classifications.label") == ["Dogs", "car", "cat", "dog", "tree"]


def test_selected_samples_only(dataset, fired_params) -> None:
    chosen = dataset.values("id")[1:3]
    result = _tag(dataset, {**fired_params, "field": "ram", "view_target": "SELECTED_SAMPLES"}, selected=chosen)
    assert result["total"] == 2 and result["tagged"] == 2
    assert sorted(dataset.exists("ram").values("id")) == sorted(chosen)


def test_current_view_with_zero_samples_is_a_clear_error(dataset, fired_params) -> None:
    empty = dataset.match(F("filepath") == "/nowhere.jpg")
    fx.assert_failed(foo.execute_operator(fx.TAG_URI, {"view": empty, "params": {
        **fired_params, "view_target": "CURRENT_VIEW"}}).result, "no samples")
    assert not dataset.has_sample_field("ram")


def test_missing_media_is_reported_and_retried_on_rerun(dataset, fired_params, tmp_path) -> None:
    missing = tmp_path / "later.jpg"
    sample = fo.Sample(filepath=str(missing))
    dataset.add_sample(sample)
    result = _tag(dataset, {**fired_params, "field": "ram"})
    assert (result["tagged"], result["failed"]) == (6, 1)
    assert result["failures"][0]["id"] == sample.id and "not found" in result["failures"][0]["error"]
    sample.reload()
    assert sample.ram is None and "not found" in sample.ram_error
    fx.write_images(tmp_path / "gen", 1)[0].rename(missing)
    again = _tag(dataset, {**fired_params, "field": "ram"})
    assert (again["tagged"], again["skipped"], again["failed"]) == (1, 6, 0)
    sample.reload()
    assert sample.ram is not None and sample.ram_error is None


def test_delegated_run_reports_progress_and_writes_the_same_results(dataset, fired_params) -> None:
    operation = fx.run_delegated(fx.TAG_URI, dataset, {**fired_params, "field": "ram", "chunk_size": 2})
    assert operation.run_state == ExecutionRunState.COMPLETED, operation.result
    assert operation.result.result["tagged"] == 6
    assert operation.status is not None and operation.status.progress == pytest.approx(1.0)
    assert dataset.count("ram") == 6 and len(set(dataset.values("ram.model_version"))) == 1


def _tagged_count(dataset: fo.Dataset) -> int:
    dataset.reload()  # another process adds the field: refresh the schema this process knows
    return dataset.count("ram") if dataset.has_sample_field("ram") else 0


def test_kill_in_the_middle_then_rerun_loses_and_duplicates_nothing(fired_params, tmp_path, fired_engine) -> None:
    """SIGKILL a CLI run after its first chunks are written; the rerun finishes only the rest."""
    paths = fx.write_images(tmp_path / "many", 40, seed=3)
    dataset = fx.make_dataset("tag-kill", paths)
    args = [sys.executable, "-m", "ram_model.cli", "fiftyone", "tag", "--dataset", dataset.name,
            "--chunk-size", "4", "--no-progress", "--batch-size", "4"]
    for key, value in fired_params.items():
        args += [f"--{key.replace('_', '-')}", value]
    proc = subprocess.Popen(args, cwd=fx.REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=os.environ.copy())
    try:
        deadline = time.monotonic() + 240
        while _tagged_count(dataset) < 8:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the CLI wrote nothing in time"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done_before = _tagged_count(dataset)
    assert 8 <= done_before < 40, "the kill came too late to test resuming"

    result = _tag(dataset, {**fired_params, "field": "ram", "chunk_size": 8})
    assert result["skipped"] == done_before and result["tagged"] == 40 - done_before
    assert dataset.count("ram") == 40
    assert all(len(label.classifications) == len(FIRED) for label in dataset.values("ram"))
    expected = _expected(fired_engine, dataset.values("filepath"))
    got = [{c.label: c.confidence for c in label.classifications} for label in dataset.values("ram")]
    for g, e in zip(got, expected):
        np.testing.assert_allclose([g[k] for k in FIRED], [e[k] for k in FIRED], rtol=1e-5)
    dataset.delete()


def test_overwrite_with_the_same_settings_retags_only_the_target(dataset, fired_params) -> None:
    _tag(dataset, {**fired_params, "field": "ram"})
    before = {s.id: [c.id for c in s.ram.classifications] for s in dataset}
    target = dataset.values("id")[1]
    result = _tag(dataset, {**fired_params, "field": "ram", "overwrite": True, "view_target": "SELECTED_SAMPLES"},
                  selected=[target])
    assert (result["tagged"], result["skipped"]) == (1, 0)
    after = {s.id: [c.id for c in s.ram.classifications] for s in dataset}
    assert after[target] != before[target]
    assert {k: v for k, v in after.items() if k != target} == {k: v for k, v in before.items() if k != target}


def test_per_tag_thresholds_and_top_k_decide_what_is_written(dataset, fired_params) -> None:
    result = _tag(dataset, {**fired_params, "field": "ram", "tag_threshold": "cat=1.0, sky=0.0", "top_k": 1})
    assert result["tagged"] == 6
    # dog (0.0 in the file) and sky (0.0 by override) fire, cat is switched off; top_k keeps the better one.
    for label in dataset.values("ram"):
        assert len(label.classifications) == 1 and label.classifications[0].label in {"dog", "sky"}
    assert dataset.get_run_info("ram_tag_ram").config.tag_threshold == [["cat", 1.0], ["sky", 0.0]]


def test_a_label_field_restricts_the_engine_to_its_classes(dataset, fired_params, fired_engine) -> None:
    """With a label field, only the RAM tags its labels map onto are computed: the same scores
    as the full fired_params for them; "Keep every RAM tag" computes all of them again."""
    result = _tag(dataset, {**fired_params, "field": "ram", "label_field": "ground_truth", "threshold": 0.0})
    assert result["tagged"] == 6
    config = dataset.get_run_info("ram_tag_ram").config
    assert config.computed_classes == ["dog", "cat", "car", "tree"]  # vocabulary order
    results = dataset.load_run_results("ram_tag_ram", cache=False)
    assert results.vocabulary["names"] == list(fired_engine.vocab.names)  # the record stays over the whole vocabulary
    full = fired_engine.predict(dataset.values("filepath"))
    for label, reference in zip(dataset.values("ram"), full):
        got = {c.label: c.confidence for c in label.classifications}
        assert set(got) == {"dog", "cat", "car", "tree"}  # threshold 0: every computed tag fires
        for name, score in got.items():
            assert score == pytest.approx(float(reference.probs[fired_engine.vocab.index_of(name)]), abs=1e-5)
    probs = np.stack([p.probs for p in full])
    columns = [fired_engine.vocab.index_of(n) for n in ("dog", "car", "cat", "dog", "tree")]
    np.testing.assert_allclose(np.array(dataset.values("ram_scores")), probs[:, columns], atol=1e-5)

    fx.assert_failed(_tag(dataset, {**fired_params, "field": "ram", "label_field": "ground_truth", "threshold": 0.0,
                                    "all_ram_tags": True}), "computed_classes")
    _tag(dataset, {**fired_params, "field": "ram", "label_field": "ground_truth", "threshold": 0.0,
                   "all_ram_tags": True, "overwrite": True})
    assert dataset.get_run_info("ram_tag_ram").config.computed_classes is None
    assert all(len(label.classifications) == len(fired_engine.vocab) for label in dataset.values("ram"))


def test_the_restricted_tagger_shares_the_engine(fired_engine) -> None:
    from plugin.models.engine_cache import LocalTagger, computing_only

    tagger = LocalTagger(fired_engine)
    picked = computing_only(tagger, [fired_engine.vocab.index_of("tree"), fired_engine.vocab.index_of("dog")])
    assert picked.computed_classes == ("dog", "tree") and tagger.computed_classes is None
    assert picked._computing.model is fired_engine.model and picked._computing.info()["num_classes"] == 2
    assert picked.vocab is fired_engine.vocab and picked.model_version == fired_engine.model_version
    assert computing_only(tagger, range(len(fired_engine.vocab) // 2)) is tagger  # most classes: the full fired_engine


def test_a_tag_run_recorded_before_the_one_vocabulary_shape_still_reads() -> None:
    """Runs record `TagVocabulary.to_dict()`; datasets tagged earlier hold the same lists under
    vocab_names / vocab_names_zh / class_thresholds, and disagreements and export still read them."""
    from plugin.jobs.runs import tag_vocabulary
    from ram_model.model.vocab import TagVocabulary

    vocab = TagVocabulary(("dog", "cat"), ("狗", "猫"), np.array([0.5, 0.7], dtype=np.float32))
    legacy = {"vocab_names": ["dog", "cat"], "vocab_names_zh": ["狗", "猫"], "class_thresholds": [0.5, 0.7]}
    for stored in ({"vocabulary": vocab.to_dict()}, legacy):
        read = tag_vocabulary(stored, "k")
        assert read.names == vocab.names and read.names_zh == vocab.names_zh
        assert np.array_equal(read.thresholds, vocab.thresholds)
    assert tag_vocabulary({}, "k") is None
