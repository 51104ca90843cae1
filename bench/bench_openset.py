"""Open-set classes (issue 20): their speed against closed-set classes, their memory, and (with
real weights) the recall of free-text queries.

    PYTHONPATH=. .venv/bin/python bench/bench_openset.py --size tiny --threads 1  # ~2-3 min on 2 shared cores
    PYTHONPATH=. .venv/bin/python bench/bench_openset.py --size full --images 4  # RAM++ Swin-L, random weights
    PYTHONPATH=. .venv/bin/python bench/bench_openset.py recall --images-dir DIR \\
        --checkpoint ram_plus_swin_large_14m --text-encoder openai/clip-vit-base-patch16

Speed (one run, same images, same engine; every ratio against the 50-RAM-tag view measured
in the same process): the engine computing 50 RAM tags (`restricted`), 50 open-set classes
scored from 63 template embeddings each (`--open-set`), 25 + 25 mixed, and the whole
vocabulary. Encoding the templates is measured apart (texts per second of the text
encoder: `random:tiny`, or `--clip-shape` for a random CLIP ViT-B text tower of the real
width, 12 layers x 512, with the tiny tokenizer: the cost the real encoder has).

Memory of N open-set classes (63 descriptions each), each N in a fresh process against the
same process over 24 closed-set classes: the bytes of their label rows, the resident memory
the built view holds, and what one forward adds on top (peak RSS after resetting the
watermark; on CUDA the allocator's peak).

Recall: DIR holds one folder per class, named like the class ("golden retriever/",
"scratch on the bumper/"); each class name is a text query ("a photo of a {name}.") over
the embeddings of every image; recall@k is the share of queries with an image of that
class among the k best, beside chance. With random weights it is chance; the command is for
when the real weights are reachable.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from speed_common import PROJECT_CLASSES_50, Results, build_checkpoint, default_config, timed  # noqa: E402

from ram_model import EngineConfig, TaggingEngine  # noqa: E402
from ram_model.text import load_text_encoder, template_descriptions  # noqa: E402

OPEN_NAMES = tuple(f"{adj} {noun}" for adj in ("scratched", "rusty", "dented", "cracked", "muddy")
                   for noun in ("bumper", "door handle", "side mirror", "wheel rim", "windscreen",
                                "headlight", "tail light", "roof rack", "license plate", "fuel cap"))


def _pictures(count: int, size: int) -> list:
    from PIL import Image

    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(count)]


def _clip_shape_encoder():
    """A random CLIP text tower of ViT-B/16's real shape (transformers' CLIPTextConfig defaults) and the tiny tokenizer."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from ram_model.text.encoder import TextEncoder
    from ram_model.text.tiny import _tiny_tokenizer

    tokenizer = _tiny_tokenizer()
    config = CLIPTextConfig(vocab_size=len(tokenizer), projection_dim=512, bos_token_id=tokenizer.bos_token_id,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return TextEncoder(tokenizer, CLIPTextModelWithProjection(config), "bench:clip-b-shape", random_weights=True)


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def _child_memory(args: argparse.Namespace, classes: int) -> tuple[float, float]:
    """(resident MiB once the view is built, peak MiB during one forward) of a fresh process."""
    import subprocess

    command = [sys.executable, __file__, "memory-child", "--size", args.size, "--device", args.device,
               "--child-classes", str(classes)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    held, peak = out.strip().splitlines()[-1].split()
    return float(held), float(peak)


def memory_child(args: argparse.Namespace) -> None:
    """Build the engine and a view over N open-set classes (N=0: 24 closed-set classes), then
    reset the peak-RSS watermark (Linux clear_refs) and run one forward."""
    with tempfile.TemporaryDirectory() as tmp:
        files = build_checkpoint(args.size, Path(tmp))
        engine = TaggingEngine.from_config(default_config(files, args.device, precision="fp32"))
        picture = _pictures(1, engine.image_size)
        if args.child_classes:
            rows = torch.nn.functional.normalize(torch.randn(args.child_classes, 63, 512), dim=2)
            view = engine.with_class_embeddings({f"class {i}": rows[i] for i in range(args.child_classes)})
            del rows
        else:
            view = engine.restricted(engine.vocab.names[:24])
        import gc

        gc.collect()
        held = _status_mib("VmRSS")
        if engine.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        view.predict_proba(picture)
        peak = torch.cuda.max_memory_allocated() / 2**20 if engine.device.type == "cuda" else _status_mib("VmHWM")
        print(held, peak)


def speed(args: argparse.Namespace) -> None:
    results = Results(args.json, meta={"size": args.size})
    with tempfile.TemporaryDirectory() as tmp:
        files = build_checkpoint(args.size, Path(tmp))
        config = default_config(files, args.device, precision="fp32", text_encoder="random:tiny",
                                cache_dir=str(Path(tmp) / "cache"))
        engine = TaggingEngine.from_config(config)
        known = set(engine.vocab.names)
        tags = [t for t in PROJECT_CLASSES_50 if t in known][:min(50, len(engine.vocab) // 2)]  # tiny: 24 of 48
        count = len(tags)
        pictures = _pictures(args.images, engine.image_size)

        encoder = _clip_shape_encoder() if args.clip_shape else load_text_encoder("random:tiny")
        texts = [t for name in OPEN_NAMES[:count] for t in template_descriptions(name)]
        seconds, _ = timed(lambda: encoder.encode(texts), 1)
        results.add(measure="encode templates", encoder=encoder.identity, texts=len(texts),
                    texts_per_s=len(texts) / seconds, s_per_class=seconds / count)

        views = {
            f"closed: {count} RAM tags": engine.restricted(tags),
            f"open-set: {count} classes x 63 templates": engine.open_set_view(OPEN_NAMES[:count]),
            f"mixed: {count // 2} tags + {count - count // 2} open-set":
                engine.open_set_view(tags[:count // 2] + list(OPEN_NAMES[:count - count // 2])),
            f"closed: all {len(engine.vocab)} tags": engine,
        }
        # Interleaved rounds, best of each: drift on a shared machine hits every configuration alike.
        best = {name: float("inf") for name in views}
        for view in views.values():
            view.predict_proba(pictures[:1])  # warm-up
        for _ in range(args.repeats):
            for name, view in views.items():
                seconds, _ = timed(lambda v=view: v.predict_proba(pictures), 1, engine.device)
                best[name] = min(best[name], seconds)
        baseline = len(pictures) / best[next(iter(views))]
        for name in views:
            rate = len(pictures) / best[name]
            results.add(measure="speed", config=name, images_per_s=rate, ratio_vs_closed=rate / baseline)

    # Memory: each N in a fresh process, against the same process over 24 closed-set classes.
    base_held, base_peak = _child_memory(args, 0)
    for n in args.memory_classes:
        held, peak = _child_memory(args, n)
        results.add(measure="memory", classes=n, rows_mib=n * 63 * 512 * 4 / 2**20,
                    held_vs_closed_mib=held - base_held, forward_extra_mib=(peak - held) - (base_peak - base_held))
    results.save()


def recall(args: argparse.Namespace) -> None:
    root = Path(args.images_dir)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise SystemExit(f"{root} needs one folder per class (at least two)")
    paths, labels = [], []
    for i, name in enumerate(classes):
        for path in sorted((root / name).iterdir()):
            if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"):
                paths.append(str(path))
                labels.append(i)
    engine = TaggingEngine.from_config(EngineConfig(checkpoint=args.checkpoint, text_encoder=args.text_encoder,
                                                    device=args.device))
    found = [p for p in engine.predict(paths, with_embedding=True)]
    ok = [i for i, p in enumerate(found) if p.ok]
    vectors = np.stack([found[i].embedding for i in ok])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    truth = np.asarray(labels)[ok]
    queries = engine.embed_texts([f"a photo of a {name}." for name in classes])
    order = np.argsort(-(queries @ vectors.T), axis=1)
    print(f"{len(classes)} classes, {len(ok)} images, model {engine.model_version}, random weights: "
          f"{engine.random_weights}")
    for k in (1, 5, 10):
        hits = np.mean([(truth[order[c, :k]] == c).any() for c in range(len(classes))])
        share = np.bincount(truth, minlength=len(classes)) / len(truth)
        chance = np.mean([1 - (1 - s) ** min(k, len(truth)) for s in share])
        print(f"recall@{k}: {hits:.3f}   (chance ~{chance:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=["speed", "recall", "memory-child"], default="speed")
    parser.add_argument("--threads", type=int, help="torch threads (1 on shared cores: see bench/README.md)")
    parser.add_argument("--child-classes", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--size", choices=["tiny", "full"], default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-classes", type=int, nargs="*", default=[100, 1000, 10000])
    parser.add_argument("--clip-shape", action="store_true", help="time encoding with a real-width random CLIP text tower")
    parser.add_argument("--json", help="write the rows here as they are measured")
    parser.add_argument("--images-dir", help="recall: one folder of images per class")
    parser.add_argument("--checkpoint", default="ram_plus_swin_large_14m")
    parser.add_argument("--text-encoder", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    {"speed": speed, "recall": recall, "memory-child": memory_child}[args.mode](args)


if __name__ == "__main__":
    main()
