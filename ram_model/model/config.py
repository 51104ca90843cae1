"""Architecture and engine configuration.

The architecture is read from the official-format JSON files (the Swin JSON and the
tagging-head `q2l_config.json`), so any size the official code can build, we can build.
Copies of the official files ship in `ram_model/data` (Apache-2.0, recognize-anything).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Mapping

from ..errors import ConfigError
from ..option import option

__all__ = [
    "SwinConfig",
    "HeadConfig",
    "Preset",
    "PRESETS",
    "DEFAULT_CHECKPOINT",
    "EngineConfig",
    "PRECISIONS",
    "packaged_file",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LABEL_EMBED_DIM",
    "DESCRIPTIONS_PER_CLASS",
]

Variant = Literal["ram", "ram_plus"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The official models project images and label embeddings into a fixed 512-d space
# (CLIP's text width): `image_proj`, `label_embed` and the head's key/value inputs.
LABEL_EMBED_DIM = 512
# RAM++ stores 51 LLM-written description embeddings per class.
DESCRIPTIONS_PER_CLASS = 51


def packaged_file(name: str) -> Path:
    """Path of a data file shipped in the package (configs, tag lists, thresholds)."""
    return Path(str(resources.files("ram_model") / "data" / name))


def _read_json(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError as e:
        raise ConfigError(f"config file not found: {path}") from e
    except (json.JSONDecodeError, RecursionError) as e:
        raise ConfigError(f"config file {path} is not valid JSON: {e or 'nested too deeply'}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    return data


def _require(data: Mapping[str, Any], keys: tuple[str, ...], source: str) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise ConfigError(f"{source} lacks required keys: {', '.join(missing)}")


@dataclass(frozen=True)
class SwinConfig:
    """The official Swin JSON: `vision_width, image_res, window_size, embed_dim, depths, num_heads`."""

    image_res: int
    window_size: int
    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    vision_width: int
    patch_size: int = 4
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        if len(self.depths) != len(self.num_heads):
            raise ConfigError("swin config: depths and num_heads must have the same length")
        width = self.embed_dim * 2 ** (len(self.depths) - 1)
        if width != self.vision_width:
            raise ConfigError(
                f"swin config: vision_width {self.vision_width} does not match "
                f"embed_dim * 2**(stages-1) = {width}"
            )
        grid = self.image_res // self.patch_size
        if grid * self.patch_size != self.image_res or grid % 2 ** (len(self.depths) - 1):
            raise ConfigError(
                f"swin config: image_res {self.image_res} must be divisible by "
                f"{self.patch_size * 2 ** (len(self.depths) - 1)}"
            )
        for i, heads in enumerate(self.num_heads):
            if (self.embed_dim * 2**i) % heads:
                raise ConfigError(f"swin config: stage {i} width is not divisible by num_heads {heads}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "swin config") -> "SwinConfig":
        _require(data, ("vision_width", "image_res", "window_size", "embed_dim", "depths", "num_heads"), source)
        return cls(
            image_res=int(data["image_res"]),
            window_size=int(data["window_size"]),
            embed_dim=int(data["embed_dim"]),
            depths=tuple(int(d) for d in data["depths"]),
            num_heads=tuple(int(h) for h in data["num_heads"]),
            vision_width=int(data["vision_width"]),
        )

    @classmethod
    def from_file(cls, path: str | Path) -> "SwinConfig":
        return cls.from_dict(_read_json(path), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        return {
            "vision_width": self.vision_width,
            "image_res": self.image_res,
            "window_size": self.window_size,
            "embed_dim": self.embed_dim,
            "depths": list(self.depths),
            "num_heads": list(self.num_heads),
        }


@dataclass(frozen=True)
class HeadConfig:
    """The tagging head's BERT settings from `q2l_config.json`.

    Only the fields the cross-attention-only stack uses are kept; `encoder_width` is
    always 512 in the official models, whatever the JSON says.
    """

    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    num_hidden_layers: int
    layer_norm_eps: float = 1e-12

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"head config: hidden_size {self.hidden_size} is not divisible by "
                f"num_attention_heads {self.num_attention_heads}"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "head config") -> "HeadConfig":
        _require(data, ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers"), source)
        act = data.get("hidden_act", "gelu")
        if act != "gelu":
            raise ConfigError(f"{source}: hidden_act {act!r} is not supported (the official head uses 'gelu')")
        return cls(
            hidden_size=int(data["hidden_size"]),
            intermediate_size=int(data["intermediate_size"]),
            num_attention_heads=int(data["num_attention_heads"]),
            num_hidden_layers=int(data["num_hidden_layers"]),
            layer_norm_eps=float(data.get("layer_norm_eps", 1e-12)),
        )

    @classmethod
    def from_file(cls, path: str | Path) -> "HeadConfig":
        return cls.from_dict(_read_json(path), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        """The official q2l_config.json format, so the official code can build the same head."""
        return {
            "architectures": ["BertModel"],
            "model_type": "bert",
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_attention_heads": self.num_attention_heads,
            "num_hidden_layers": self.num_hidden_layers,
            "layer_norm_eps": self.layer_norm_eps,
            "hidden_act": "gelu",
            "attention_probs_dropout_prob": 0.1,
            "hidden_dropout_prob": 0.1,
            "initializer_range": 0.02,
            "max_position_embeddings": 512,
            "pad_token_id": 0,
            "type_vocab_size": 2,
            "vocab_size": 30522,
            "encoder_width": 512,
            "add_cross_attention": True,
            "add_tag_cross_attention": False,
        }


@dataclass(frozen=True)
class Preset:
    """A published checkpoint: where it lives on the hub and which configs build it."""

    variant: Variant
    hf_repo: str
    hf_filename: str
    swin_config: str
    head_config: str = "q2l_config.json"
    license: str = "Apache-2.0"


PRESETS: dict[str, Preset] = {
    "ram_plus_swin_large_14m": Preset(
        variant="ram_plus",
        hf_repo="xinyu1205/recognize-anything-plus-model",
        hf_filename="ram_plus_swin_large_14m.pth",
        swin_config="swin/config_swinL_384.json",
    ),
    "ram_swin_large_14m": Preset(
        variant="ram",
        hf_repo="xinyu1205/recognize_anything_model",
        hf_filename="ram_swin_large_14m.pth",
        swin_config="swin/config_swinL_384.json",
    ),
}

Precision = Literal["auto", "fp32", "fp16", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16")
# The checkpoint used when none is named (the best published one).
DEFAULT_CHECKPOINT = "ram_plus_swin_large_14m"


@dataclass(frozen=True)
class EngineConfig:
    """Everything needed to build a `TaggingEngine`; values only, never looked up from the environment.

    `checkpoint` is a preset name (see `PRESETS`), a local path, or `hf://owner/repo/file`.
    Config and vocabulary paths left as None fall back to the checkpoint's own metadata
    (converted files) or to the packaged official files.

    The fields made with `option(...)` are the engine's user-facing options: their help,
    range and label are declared here once, and `ram_model.inference.options.ModelOptions`
    (flags, server settings, FiftyOne form, environment) is derived from them, so a new
    engine option is one new field here.
    """

    checkpoint: str = option(
        DEFAULT_CHECKPOINT,
        f"local .pth/.safetensors, a preset ({', '.join(PRESETS)}), random:tiny (no download; random tags), "
        "hf://owner/repo/file or registry://ROOT/NAME",
        str, label="Checkpoint", required=True,
    )
    swin_config: str | None = option(
        None, "Swin JSON (default: the checkpoint's own, else Swin-L 384)", str, label="Swin config file"
    )
    head_config: str | None = option(
        None, "tagging-head JSON, q2l_config.json format (default: the checkpoint's own or the official one)", str,
        label="Tagging-head config file",
    )
    tag_list: str | None = option(
        None, "English tag list, one per line (default: the official 4,585 tags)", str, label="English tag list file"
    )
    tag_list_zh: str | None = option(
        None, "Chinese tag list aligned with the English one", str, label="Chinese tag list file"
    )
    thresholds: str | None = option(
        None, "class-threshold file, one per line (default: the official one)", str, label="Class-threshold file"
    )
    variant: Variant | None = None
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps", str, label="Device")
    precision: Precision = option(  # ram_model.inference.precision resolves auto
        "auto", "inference precision (auto: fp16 on CUDA, bf16 on CPUs with AMX, fp32 on other CPUs; fp32: exact)",
        str, choices=PRECISIONS, label="Precision",
    )
    compile: bool = option(  # torch.compile (inductor, freezing) per input shape; eager if it can't compile
        False, "torch.compile the model (long runs: minutes to compile per batch shape, then faster; "
        "falls back to eager if it can't compile)", bool, in_form=False,
    )
    batch_size: int | None = option(  # None: 1 on CPU (measured fastest there), 32 on an accelerator
        None, "images per forward pass (default: 1 on CPU, 32 on GPU)", int, low=1, high=1024, label="Batch size"
    )
    exif_transpose: bool = option(
        True, "ignore EXIF orientation (exact parity with the official pipeline)", bool,
        label="Ignore EXIF orientation", negated_as="no_exif_transpose",
    )
    decode_workers: int | None = option(  # None: ram_model.inference.pipeline.default_decode_workers(), 0: inline
        None, "image decoding threads (default: one per core, 2 to 8; 0 decodes on the main thread)", int,
        low=0, high=64, label="Decode workers",
    )
    prefetch_batches: int = 2  # decoded batches kept ahead of the model, for as long as one predict_iter runs
    gpu_decode: bool = option(  # CUDA: JPEGs decoded by nvJPEG (torchvision), Pillow for the rest
        False, "decode JPEGs on the CUDA GPU (nvJPEG via torchvision); Pillow for other images", bool,
        label="Decode JPEGs on the GPU",
    )
    fast_jpeg_decode: bool = option(  # large JPEGs decoded at reduced scale (not bit-exact: images.load_image)
        False, "decode JPEGs at least twice the model's input size at 1/2-1/8 scale (2-5x cheaper decoding; "
        "pixels differ slightly from the official pipeline)", bool, label="Fast JPEG decoding",
    )
    max_image_pixels: int = 89_478_485
    cache_dir: str | None = None
    trust_pickle: bool = option(
        False, "allow checkpoints that contain pickled Python objects (only for files you trust)", bool,
        in_form=False,
    )
    # English tag names to compute, in this order (None: the whole vocabulary). The head has
    # no attention between class queries, so the scores equal the full model's for them.
    classes: tuple[str, ...] | None = option(
        None, "compute only these tags: a,b,c or a file with one tag per line (default: every tag; "
        "scores equal the full model's, and fewer tags run faster)", list, metavar="TAGS|FILE",
        label="Only these tags",
    )
    # Open-set classes (ram_model.text.open_classes): names in `classes` that are not RAM tags are
    # scored from CLIP text embeddings of templated descriptions; `descriptions` names a JSON
    # file {tag: [descriptions]} (its tags are the classes when `classes` is None).
    open_set: bool = option(
        False, "--classes may name classes that are not RAM tags (open-set: scored from CLIP text embeddings "
        "of prompt templates; threshold 0.5)", bool, in_form=False, label="Open-set classes",
    )
    descriptions: str | None = option(
        None, 'open-set classes from a JSON file {"tag": ["description", ...]} (the official RAM++ format; '
        "its tags are the classes unless --classes is given)", str, metavar="FILE", in_form=False,
        label="Class descriptions file",
    )
    text_encoder: str | None = option(  # ram_model.text: a Hugging Face repo, a folder or random:tiny
        None, "CLIP text encoder for open-set classes and text search: a Hugging Face repo, a local folder or "
        "random:tiny (random weights) (default: openai/clip-vit-base-patch16)", str, in_form=False,
        label="Text encoder",
    )

    @property
    def wants_open_set(self) -> bool:
        return self.open_set or self.descriptions is not None

    def __post_init__(self) -> None:
        if self.classes is not None:
            if isinstance(self.classes, str):
                raise ConfigError("classes must be a sequence of tag names, not one string")
            given = tuple(str(c).strip() for c in self.classes)
            names = tuple(dict.fromkeys(given))
            if not names or not all(names):
                raise ConfigError("classes must name at least one tag, and no empty names")
            if self.wants_open_set and len(names) != len(given):
                twice = next(n for i, n in enumerate(given) if n in given[:i])
                raise ConfigError(f"class {twice!r} is given twice")
            object.__setattr__(self, "classes", names)
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError("batch_size must be >= 1")
        if self.decode_workers is not None and self.decode_workers < 0:
            raise ConfigError("decode_workers must be >= 0")
        if self.prefetch_batches < 0:
            raise ConfigError("prefetch_batches must be >= 0")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be auto, fp32, fp16 or bf16, not {self.precision!r}")
        if self.variant not in (None, "ram", "ram_plus"):
            raise ConfigError(f"variant must be 'ram' or 'ram_plus', not {self.variant!r}")
