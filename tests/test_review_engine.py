"""The review core on a real (tiny, random-weight) engine: the path the backend and plugin take."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ram_model import TaggingEngine
from ram_model.review import (
    build_finetune_records,
    build_label_mapping,
    find_disagreements,
    flip_posteriors,
    read_finetune_json,
    select_review_batch,
    write_finetune_json,
)


def test_engine_probabilities_through_mapping_scoring_selection_and_export(
    tiny_engine: TaggingEngine, image_dir: Path, tmp_path: Path
) -> None:
    vocab = tiny_engine.vocab
    project = ["Dogs", "cat", "Street_Sign", "pet", "unicorn"]
    mapping = build_label_mapping(project, vocab.names, synonyms={"pet": ["dog", "cat"]}, ram_names_zh=vocab.names_zh)
    assert mapping.unmapped == ("unicorn",)

    paths = sorted(p for p in image_dir.rglob("*") if p.is_file())
    predictions = tiny_engine.predict([str(p) for p in paths], with_embedding=True)
    assert all(p.ok for p in predictions)
    ram_probs = np.stack([p.probs for p in predictions])
    probs = mapping.project_probs(ram_probs)
    thresholds = mapping.project_thresholds(vocab.thresholds)
    assert probs.shape == (len(paths), len(project)) and np.isnan(probs[:, 4]).all()

    # Existing labels: everybody says "cat" and "unicorn"; the scores must come from the model only.
    labels = [{1, 4} for _ in paths]
    report = find_disagreements(labels, probs, thresholds=thresholds)
    assert report.sample_scores.shape == (len(paths),)
    assert not any(i.label_index == 4 for issues in report.missing + report.doubtful for i in issues)
    cat_doubtful = [any(i.label_index == 1 for i in d) for d in report.doubtful]
    posteriors = flip_posteriors(labels, probs, thresholds=thresholds)
    assert cat_doubtful == (posteriors[:, 1] > report.flag_at).tolist()
    # A "doubtful" flag always means the model, at its threshold, decides the other way.
    assert all(probs[row, 1] < thresholds[1] for row, flagged in enumerate(cat_doubtful) if flagged)

    embeddings = np.stack([p.embedding for p in predictions])
    batch = select_review_batch(
        3, disagreement=report.sample_scores, probs=probs, thresholds=thresholds, embeddings=embeddings, seed=0
    )
    assert len(set(batch.tolist())) == 3

    items = [(str(p.relative_to(image_dir)), ["cat", "pet", "unicorn"], None) for p in paths]
    records, export = build_finetune_records(items, mapping)
    assert export.skipped_labels == {"unicorn": len(paths)}
    out = write_finetune_json(records, tmp_path / "ft.json", image_root=image_dir, num_classes=len(vocab))
    back = read_finetune_json(out, num_classes=len(vocab), image_root=image_dir)
    assert back == records
    assert back[0].union_label_id == sorted({vocab.index_of("cat"), vocab.index_of("dog")})
