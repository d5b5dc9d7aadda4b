#!/usr/bin/env bash
# The main job: set up, then on a GPU run the examples and benchmarks; without one, run the
# CPU path (planning and compiling) and say that the kernels need a Hopper GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${STATICBATCH_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
if ! "$PY" -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1; then
        "$PY" -m pip install -q torch
    else
        "$PY" -m pip install -q torch==2.13.0
    fi
fi
"$PY" -m pip install -q -e .
"$PY" -m staticbatch info
"$PY" examples/custom_task.py
if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    "$PY" benchmarks/bench_mapper.py
else
    echo "No CUDA GPU here: the kernels need one (the MoE kernels need Hopper, sm_90a). Planning and"
    echo "compilation ran on the CPU above; run this script on an H100/H200 for the benchmarks."
fi
