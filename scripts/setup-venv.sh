# Sourced by .ci/run and scripts/run.sh: create the virtual environment and install torch
# (the CPU wheel 2.13.0 where there is no GPU: an unpinned torch pulls a multi-GB CUDA build).
# Sets PY to the environment's python. STATICBATCH_VENV picks the environment (default .venv).
VENV=${STATICBATCH_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
if ! "$PY" -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1; then
        "$PY" -m pip install -q torch           # a GPU machine: torch's default CUDA build
    else
        "$PY" -m pip install -q torch==2.13.0   # CPU wheel
    fi
fi
