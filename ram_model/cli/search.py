"""`ram-annotate search "TEXT" --index OUT.jsonl`: images ranked by a free-text query (ram_model.text.search)."""
from __future__ import annotations

import argparse
import json
import sys

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="rank the images of a `tag --embedding` output by a text query",
                       description="Embed each TEXT with CLIP's text encoder and print the images of the index "
                                   "closest to it (cosine similarity of RAM++'s image embeddings), best first, "
                                   "as JSON Lines.")
    p.add_argument("texts", nargs="+", metavar="TEXT")
    p.add_argument("--index", required=True, metavar="OUT.jsonl", help="output of `ram-annotate tag --embedding`")
    p.add_argument("--top-k", type=int, default=10, help="results per query (default: 10)")
    p.add_argument("--text-encoder", default=None,
                   help="Hugging Face repo, folder or random:tiny (default: openai/clip-vit-base-patch16)")
    p.add_argument("--cache-dir", default=None, help="Hugging Face cache folder")
    p.set_defaults(func=_cmd_search)


def _cmd_search(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..text import load_text_encoder
    from ..text.search import rank_by_text, read_embedding_index

    if args.top_k < 1:
        raise ConfigError("--top-k must be >= 1")
    texts = [t.strip() for t in args.texts]
    if not all(texts):
        raise ConfigError("a search text is empty")
    index = read_embedding_index(args.index)
    encoder = load_text_encoder(args.text_encoder, cache_dir=args.cache_dir)
    if index.random_weights or encoder.random_weights:
        print("WARNING: random weights (the index's model or the text encoder): this order means nothing.",
              file=sys.stderr)
    if len(index.model_versions) > 1:
        print(f"warning: {args.index} mixes embeddings of {len(index.model_versions)} model versions",
              file=sys.stderr)
    for text, query in zip(texts, encoder.encode(texts).numpy()):
        for rank, (row, score) in enumerate(rank_by_text(index, query, args.top_k), 1):
            print(json.dumps({"query": text, "rank": rank, "path": index.paths[row], "score": round(score, 6)},
                             ensure_ascii=False))
    return 0
