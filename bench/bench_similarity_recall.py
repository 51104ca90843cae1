"""Recall@k of text queries by tag name, against chance, on a labelled FiftyOne dataset.

A query is a RAM tag name (the labels of `--label-field` mapped to RAM tags by name); its
relevant images are the samples labelled with it. The ranking is the Brain index's own
`sort_by_similarity(tag)`, as in the App, over RAM's pooled image embeddings, with the
query embedded as the tag's text embedding (RAM++: the mean of its 51 descriptions).

    # a real checkpoint on your own labelled dataset (labels named like RAM tags)
    .venv/bin/python bench/bench_similarity_recall.py --dataset NAME --label-field ground_truth \\
        --checkpoint ram_plus_swin_large_14m [--ks 1 5 10]
    # no arguments: the tiny random-weight model on generated images (checks the path; chance-level)
    .venv/bin/python bench/bench_similarity_recall.py

Without --dataset, a throw-away database is used; with it, set FIFTYONE_DATABASE_URI as for
your own data (the script then must not import tests/fo_fixtures).
"""
from __future__ import annotations

# ruff: noqa: I001  (FiftyOne reads its config at import: the environment is set up first)

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", help="an existing FiftyOne dataset (default: a generated tiny one)")
    parser.add_argument("--label-field", default="ground_truth")
    parser.add_argument("--checkpoint", help="checkpoint (default with --dataset: ram_plus_swin_large_14m)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--brain-key", default="ram_sim_bench")
    args = parser.parse_args()

    if args.dataset is None:
        import fo_fixtures as fx  # a private database; must precede fiftyone
        from ram_model.weights.testing import make_tiny_checkpoint

        tmp = Path(tempfile.mkdtemp())
        files = make_tiny_checkpoint(tmp / "model", variant="ram_plus", seed=0)
        tags = ["dog", "cat", "car", "tree", "sky", "boat"]
        labels = [[tags[i % len(tags)], tags[(i * 7 + 3) % len(tags)]] for i in range(60)]
        dataset = fx.make_dataset("bench-similarity-recall", fx.write_images(tmp / "images", 60, seed=3),
                                  labels=labels, label_field=args.label_field)
        params = {**fx.model_params(files), "device": args.device}
        what = "tiny random-weight RAM++ (tags mean nothing: expect chance level)"
    else:
        import fiftyone as fo

        dataset = fo.load_dataset(args.dataset)
        params = {"checkpoint": args.checkpoint or "ram_plus_swin_large_14m", "device": args.device}
        what = params["checkpoint"]

    from plugin.models.engine_cache import get_tagger
    from plugin.jobs.similarity import compute_ram_similarity
    from plugin.jobs.similarity_recall import tag_query_recall
    from plugin.params import ModelParams, SimilarityParams

    model = ModelParams.from_mapping(params, secrets={})
    compute_ram_similarity(dataset, get_tagger(model),
                           SimilarityParams(embeddings_field="ram_embedding_bench", brain_key=args.brain_key,
                                            overwrite=True), model=model)
    report = tag_query_recall(dataset, args.brain_key, args.label_field, args.ks)
    print(f"model: {what}; {report.samples} samples, {len(report.queries)} tag queries")
    print(f"{'k':>4} {'recall@k':>9} {'chance':>7} {'ratio':>6}")
    for k in args.ks:
        chance = report.chance_at_k[k]
        print(f"{k:>4} {report.recall_at_k[k]:>9.3f} {chance:>7.3f} {report.recall_at_k[k] / chance:>6.2f}")
    print(json.dumps(report.to_dict()["recall_at_k"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
