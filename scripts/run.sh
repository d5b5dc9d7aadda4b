#!/usr/bin/env bash
# The main job: set up, run the MoE demo (a small MoE transformer patched with staticbatch's
# blocks, checked against the original and timed) and the custom-task tutorial; on a Hopper
# GPU also the benchmarks. Without one the demo runs the torch reference path and says that
# the kernels need a Hopper GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup-venv.sh
"$PY" -m pip install -q -e ".[hf]"
"$PY" -m staticbatch info
"$PY" -m staticbatch_moe.demo
"$PY" examples/custom_task.py
if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.get_device_capability() == (9, 0) else 1)" 2>/dev/null; then
    "$PY" benchmarks/bench_mapper.py
    "$PY" benchmarks/bench_grouped_gemm.py
else
    echo "No Hopper GPU here: the kernels need one (sm_90a). The demo ran the reference path and the"
    echo "tutorial compiled its kernel on the CPU; run this script on an H100/H200 for the benchmarks."
fi
