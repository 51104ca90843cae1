"""Which floating-point precision inference runs in, and preparing the weights for it once.

Autocast alone re-casts every fp32 weight to the low dtype on every forward (about 450 M
parameters for RAM++ Swin-L, 120 M of them in `label_embed`). Casting those weights once
at load gives the same numbers: the casts below are exactly the ones autocast performs
(a weight already in the low dtype passes through autocast unchanged), while LayerNorm,
softmax and the other fp32-policy ops keep autocast's rules because inference still runs
under autocast.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch
from torch import nn

__all__ = ["AMX_OVERRIDE_ENV", "autocast_context", "cast_for_inference", "cpu_has_amx", "inference_dtype",
           "precision_name", "precision_tag"]

# Tests only: "1" makes `cpu_has_amx()` answer True, "0" False, so the whole suite can be run
# down the branch an AMX machine takes (bf16) on any CPU, and the other branch on an AMX one.
AMX_OVERRIDE_ENV = "RAM_ANNOTATE_TEST_ASSUME_AMX"

# Modules whose weight and bias autocast casts to the low dtype (linear, conv2d) ...
_LOW_PRECISION_MODULES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d)
# ... and bare parameters that only ever feed low-precision ops (matmul, einsum, linear).
_LOW_PRECISION_PARAMETERS = ("label_embed",)
# LayerNorm weights, `relative_position_bias_table` and `reweight_scale` stay fp32: the
# first runs in fp32 under autocast and the other two are added or exponentiated in fp32.

_DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def cpu_has_amx() -> bool:
    """True on CPUs with AMX tiles (Intel Sapphire Rapids and later), where bf16 matmuls pay off.

    Without AMX (AVX2 or AVX-512 only), bf16 is slower than fp32: measured ~7x slower
    for Swin-L on an AVX2 EPYC. `RAM_ANNOTATE_TEST_ASSUME_AMX=1|0` overrides the probe (tests).
    """
    forced = os.environ.get(AMX_OVERRIDE_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    probe = getattr(getattr(torch, "cpu", None), "_is_amx_tile_supported", None)
    if probe is None:  # older torch: the private binding, if present
        probe = getattr(getattr(torch._C, "_cpu", None), "_is_amx_tile_supported", None)
    if probe is not None:
        try:
            if probe():
                return True
        except Exception:  # noqa: BLE001 - a private probe; fall back to /proc/cpuinfo
            pass
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def inference_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The low dtype inference runs in, or None for fp32.

    `auto`: bf16 on CPUs with AMX, fp32 on other CPUs and on MPS, fp16 on CUDA. On CUDA,
    fp16 and bf16 run at the same tensor-core rate on Ampere and later; fp16 keeps three
    more mantissa bits, and Swin-L's activations stay well inside fp16's range with
    LayerNorm in fp32, so fp16 is the default. This could not be measured here (no GPU was
    lent); to choose on a given card, compare `--precision fp16` and `bf16` with
    bench/bench_engine.py (throughput and fired-tag changes against fp32).
    """
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        if device.type == "cpu" and cpu_has_amx():
            return torch.bfloat16
        return None
    return _DTYPES[precision]


def precision_name(dtype: torch.dtype | None) -> str:
    """'float32', 'bfloat16' or 'float16': what `engine.info()` reports."""
    return str(dtype or torch.float32).replace("torch.", "")


def precision_tag(dtype: torch.dtype | None) -> str:
    """'' for fp32, else '-bf16' / '-fp16': the suffix a model version carries when it runs
    in low precision, so outputs of one checkpoint made on an AMX and a non-AMX machine
    (bf16 vs fp32 under `auto`) are never taken for the same version."""
    return {None: "", torch.bfloat16: "-bf16", torch.float16: "-fp16"}.get(dtype, f"-{dtype}")


def cast_for_inference(model: nn.Module, dtype: torch.dtype | None, device: torch.device) -> int:
    """Cast, in place, the weights autocast would cast on every forward; returns how many tensors.

    fp32 (`dtype=None`) leaves the model untouched, so fp32 stays bitwise what it was.
    On MPS the weights stay fp32 and autocast alone casts, as before (untested here).
    """
    if dtype is None or device.type == "mps":
        return 0
    cast = 0
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _LOW_PRECISION_MODULES):
                for name, param in module.named_parameters(recurse=False):
                    if param.is_floating_point() and param.dtype != dtype:
                        param.data = param.data.to(dtype)
                        cast += 1
            for name in _LOW_PRECISION_PARAMETERS:
                param = module._parameters.get(name)
                if param is not None and param.dtype != dtype:
                    param.data = param.data.to(dtype)
                    cast += 1
    return cast


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to `dtype` on `device`, or nothing for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
