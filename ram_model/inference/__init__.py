"""Tagging images: the engine, its decode pipeline (`images`, `gpu_decode`, `pipeline`, `inputs`), precision and
compilation, threshold policies, the JSONL writer of `ram-annotate tag`, and the declared model options (`options`)."""
