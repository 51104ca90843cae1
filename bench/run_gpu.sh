#!/usr/bin/env bash
# The one command a device session runs on a CUDA machine (about 5-7 minutes on one H100):
#
#     bash bench/run_gpu.sh                 # run from the repository root of a checkout
#
# Prints everything as it goes and, when $OUT is set, leaves bench_gpu.json (the rows) and
# bench_gpu.log (this output) there. The official recognize-anything code is read from
# $RAM_OFFICIAL_CODE, else ./shared_official (see bench/README.md for carrying it); without
# it the side-by-side rows say n/a and everything else still runs. Extra arguments go to
# bench/bench_gpu.py (e.g. --compile, --batches 32,128). No packages are installed: the
# machine's python3 (torch with CUDA, torchvision, transformers, scipy) is used as it is.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=. PYTHONUNBUFFERED=1
official="${RAM_OFFICIAL_CODE:-shared_official}"
log="${OUT:+$OUT/bench_gpu.log}"
log="${log:-/dev/null}"
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
    python3 - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
try:
    import sys
    import torchvision
    from torchvision.io import decode_jpeg
    sys.path.insert(0, "bench")
    from natural_images import jpeg_bytes
    data = torch.frombuffer(bytearray(jpeg_bytes(0)), dtype=torch.uint8)
    print("torchvision", torchvision.__version__, "decode_jpeg(device='cuda') ->",
          tuple(decode_jpeg(data, device="cuda").shape))
except Exception as e:  # noqa: BLE001 - a report line, not a failure
    print("torchvision/nvJPEG:", type(e).__name__, e)
for name in ("transformers", "scipy", "timm"):
    try:
        print(name, __import__(name).__version__)
    except Exception as e:  # noqa: BLE001
        print(name, "missing:", e)
PY
    # 540 s: inside a 10-minute device call, with time to copy the results back.
    timeout 540 python3 bench/bench_gpu.py --official-code "$official" "$@"
    echo "bench_gpu.py exit status $?"
    date -u
} 2>&1 | tee "$log"
