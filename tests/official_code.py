"""The official recognize-anything code, imported from a checkout at run time, for parity tests and benchmarks.

Nothing official is copied into this repository: `official_modules(path)` imports the
official `ram.models.{utils, ram_plus, ram}` from a checkout of
github.com/xinyu1205/recognize-anything without `ram/__init__.py` (it needs torchvision
and CLIP); `timm` (three helpers) and `ram.models.vit` are stubbed in memory, the BERT
tokenizer (network) is replaced by a stub of the right length, and `build_official_model`
points the official CONFIG_PATH at a folder holding our configs, so any size (tiny for
tests, Swin-L for the GPU benchmark) builds from our random-weight checkpoints in the
official layout.

The official BERT code was written against transformers 4.x; transformers 5 dropped a few
helpers it imports or inherits (`apply_chunking_to_forward` and two pruning helpers from
`modeling_utils`, `invert_attention_mask` and `get_head_mask` on models). `_shim_transformers`
puts equivalents back, only where missing, and lets a 4.x-style `init_weights()` call run
5.x's `post_init` first, so the same checkout runs under 4.36-4.46 and
5.x (the GPU machine has 5.17).
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

__all__ = ["is_official_checkout", "official_modules", "build_official_model", "import_batch_inference",
           "TINY_MED"]

# Sized like the training-only tag_encoder/text_decoder sample entries make_tiny_checkpoint writes for RAM.
TINY_MED = {"hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 2, "num_hidden_layers": 2,
            "vocab_size": 32, "max_position_embeddings": 16, "add_cross_attention": True, "encoder_width": 512}


def is_official_checkout(path: str | Path) -> bool:
    return (Path(path) / "ram" / "models" / "ram_plus.py").is_file()


class _DropPath(nn.Module):  # only the eval behaviour matters here
    def __init__(self, p: float = 0.0) -> None:
        super().__init__()

    def forward(self, x):
        return x


class _Tokenizer:
    def __len__(self) -> int:  # bert-base-uncased + [DEC] + [ENC]
        return 30524

    def __call__(self, text):  # RAM measures its prompt once
        return types.SimpleNamespace(input_ids=[101] + [1] * len(text.split()) + [102])


class _Res(int):
    """The image size, also equal to 384 so the official code reads config_swinL_384.json (ours, below)."""

    def __eq__(self, other):
        return other == 384 or int(self) == other

    __hash__ = int.__hash__


def _not_for_inference(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError("head pruning is not used at inference")


def _invert_attention_mask(self, mask: torch.Tensor) -> torch.Tensor:
    """transformers 4.x semantics: 1 = attend -> 0, 0 = masked -> the dtype's minimum, broadcast over heads."""
    extended = mask[:, None, :, :] if mask.dim() == 3 else mask[:, None, None, :]
    dtype = next(self.parameters()).dtype
    return (1.0 - extended.to(dtype)) * torch.finfo(dtype).min


def _get_head_mask(self, head_mask, num_hidden_layers: int, is_attention_chunked: bool = False):
    if head_mask is not None:
        raise NotImplementedError("head masks are not used at inference")
    return [None] * num_hidden_layers


def _needs_post_init(model: nn.Module) -> bool:
    import transformers.modeling_utils as modeling_utils

    return "all_tied_weights_keys" in modeling_utils.PreTrainedModel.post_init.__code__.co_names


def _shim_transformers() -> None:
    import transformers.modeling_utils as modeling_utils
    import transformers.pytorch_utils as pytorch_utils

    for name in ("apply_chunking_to_forward", "find_pruneable_heads_and_indices", "prune_linear_layer"):
        if not hasattr(modeling_utils, name):
            setattr(modeling_utils, name, getattr(pytorch_utils, name, _not_for_inference))
    model = modeling_utils.PreTrainedModel
    if not hasattr(model, "invert_attention_mask"):
        model.invert_attention_mask = _invert_attention_mask
    if not hasattr(model, "get_head_mask"):
        model.get_head_mask = _get_head_mask
    if hasattr(model, "post_init") and not getattr(model.init_weights, "_ram_shim", False):
        # 5.x: init_weights needs what post_init records first; 4.x-style models call init_weights alone.
        original = model.init_weights

        def init_weights(self) -> None:
            if "all_tied_weights_keys" in self.__dict__ or not _needs_post_init(self):
                original(self)
            else:
                self.post_init()  # records, then calls init_weights again

        init_weights._ram_shim = True  # type: ignore[attr-defined]
        model.init_weights = init_weights


def _is_ours(name: str) -> bool:
    return name.split(".")[0] in ("timm", "ram")


@contextlib.contextmanager
def official_modules(checkout: str | Path) -> Iterator[tuple[types.ModuleType, types.ModuleType, types.ModuleType]]:
    """Yield the official (utils, ram_plus, ram) modules; sys.modules is restored afterwards."""
    checkout = Path(checkout)
    importlib.import_module("transformers")  # it probes for timm at import: import it before the stub)

    _shim_transformers()
    saved = {k: v for k, v in sys.modules.items() if _is_ours(k)}
    stubs = {
        "timm": {"__path__": []}, "timm.models": {"__path__": []}, "timm.models.hub": {"download_cached_file": None},
        "timm.models.layers": {"DropPath": _DropPath, "trunc_normal_": nn.init.trunc_normal_,
                               "to_2tuple": lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x, x)},
        "ram": {"__path__": [str(checkout / "ram")]}, "ram.models": {"__path__": [str(checkout / "ram" / "models")]},
        "ram.models.vit": {"interpolate_pos_embed": None, "VisionTransformer": None},
    }
    for name in [k for k in sys.modules if _is_ours(k)]:
        del sys.modules[name]
    for name, attrs in stubs.items():
        sys.modules[name] = types.ModuleType(name)
        sys.modules[name].__dict__.update(attrs)
    try:
        modules = tuple(importlib.import_module(f"ram.models.{m}") for m in ("utils", "ram_plus", "ram"))
        yield modules  # type: ignore[misc]
    finally:
        for name in [k for k in sys.modules if _is_ours(k)]:
            del sys.modules[name]
        sys.modules.update(saved)


def import_batch_inference(checkout: str | Path) -> types.ModuleType:
    """The official `batch_inference.py` as a module, for its dataset, transform and per-batch forward.

    Call inside `official_modules`. Its imports of the whole package (`ram.get_transform`,
    `ram.utils`: CLIP) are satisfied by stubs except the transform, which is the official
    `ram/transform.py` (torchvision; without it, `transform_error` on the module says why and
    its `_Dataset` cannot be built). Its `load_dataset`/`load_ram_plus` are not used: they
    read the official benchmark datasets and download weights.
    """
    checkout = Path(checkout)
    try:
        get_transform, transform_error = importlib.import_module("ram.transform").get_transform, None
    except ImportError as e:  # no torchvision: the forward still imports and runs, the data loader cannot
        transform_error = f"{type(e).__name__}: {e}"

        def get_transform(*args: Any, **kwargs: Any) -> Any:
            raise ImportError(transform_error)
    sys.modules["ram"].get_transform = get_transform
    utils_stub = types.ModuleType("ram.utils")
    for name in ("build_openset_llm_label_embedding", "build_openset_label_embedding", "get_mAP", "get_PR"):
        setattr(utils_stub, name, _not_for_inference)
    sys.modules["ram.utils"] = utils_stub
    for name in ("ram_plus", "ram", "tag2text"):  # imported by name only; their factories download weights
        setattr(sys.modules["ram.models"], name, _not_for_inference)
    spec = importlib.util.spec_from_file_location("official_batch_inference", checkout / "batch_inference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    module.transform_error = transform_error
    return module


def build_official_model(mods, files, workdir: str | Path, checkout: str | Path,
                         patch: Callable[[object, str, Any], None] = setattr):
    """The official RAM/RAM++ built from our configs and loaded from `files.checkpoint` -> (model, load message).

    `patch(obj, name, value)` sets the official modules' CONFIG_PATH and tokenizer (a test
    passes `monkeypatch.setattr`). `files` is a `ram_model.weights.testing.TinyModelFiles`.
    """
    utils, ram_plus, ram = mods
    workdir, checkout = Path(workdir), Path(checkout)
    (workdir / "configs" / "swin").mkdir(parents=True, exist_ok=True)
    (workdir / "data").mkdir(exist_ok=True)
    swin = json.loads(Path(files.swin_config).read_text())
    (workdir / "configs" / "swin" / "config_swinL_384.json").write_text(json.dumps(swin))
    q2l = json.loads((checkout / "ram" / "configs" / "q2l_config.json").read_text())
    # Ours lacks add_cross_attention: keep the official keys.
    q2l.update(json.loads(Path(files.head_config).read_text()))
    (workdir / "configs" / "q2l_config.json").write_text(json.dumps(q2l))
    (workdir / "data" / "ram_tag_list_threshold.txt").write_text(Path(files.thresholds).read_text())
    (workdir / "med.json").write_text(json.dumps({**q2l, **TINY_MED}))
    for m in mods:
        patch(m, "CONFIG_PATH", workdir)
        patch(m, "init_tokenizer", lambda *a, **k: _Tokenizer())
    # The official loader resizes every relative_position_bias_table to (2*window-1)^2, which breaks
    # stages smaller than the window (built with a clamped window): keep tables as they are.
    patch(utils, "interpolate_relative_pos_embed", lambda t, n, param_name="": t)
    kwargs = dict(image_size=_Res(swin["image_res"]), vit="swin_l",
                  tag_list=str(files.tag_list), tag_list_chinese=str(files.tag_list_zh))
    if files.variant == "ram":
        model = ram.RAM(med_config=str(workdir / "med.json"), **kwargs)
    else:
        model = ram_plus.RAM_plus(**kwargs)
    model, msg = utils.load_checkpoint_swinlarge(model, str(files.checkpoint), kwargs)
    return model.eval(), msg
