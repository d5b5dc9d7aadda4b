"""How much the L2 flush between replays costs the decode points: both GEMMs of a layer (as
bench_grouped_gemm times "ours": gate/up, then down as a programmatic dependent), CUDA graph,
median of 30, timed with a 256 MB buffer written between replays (dirty lines left in the L2),
read between replays (clean lines), and without a flush, each twice, the five model shapes at
T = 1, 16, 128 on the H200. shared/GPU.md does
not say how its vLLM figures were timed; this brackets what the method can be worth (dev check,
not a test). Writes benchmarks/results/dev_l2_flush_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_l2_flush_check.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch
from bench_grouped_gemm import MODELS, routing
from common import layer_weights, save, time_cuda

import staticbatch_moe as moe

rows = []
# The last shape's active weights (2 experts, 19 MB) fit in the 60 MB L2: the one point where the
# L2 could serve them between replays without a flush (measured 2026-11-28: within 1.3 us).
SMALL = "fits-in-L2 (2048, 768, 16, 2)"
for model, (h, i, e, k) in {**MODELS, SMALL: (2048, 768, 16, 2)}.items():
    torch.manual_seed(0)
    w1, w2 = layer_weights(h, i, e)
    for t in (1,) if model == SMALL else (1, 16, 128):
        plan = moe.route_plan(routing("uniform", t, e, k, seed=t), e)
        x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        mid = torch.empty(t * k, i, device="cuda", dtype=torch.bfloat16)
        y = torch.empty(t * k, h, device="cuda", dtype=torch.bfloat16)

        def ours() -> None:
            moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid)
            moe.grouped_gemm(mid, w2, plan, gather=False, out=y, programmatic_launch=True)

        active = int((plan.expert_counts > 0).sum())
        row = {"model": model, "T": t, "weight_mb": round(active * 3 * h * i * 2 / 1e6, 1), "us": {}}
        for _ in range(2):
            for flush in ("write", "read", False):
                ms = time_cuda(ours, reps=30, flush_l2=flush, warmup_ms=15)["median_ms"]
                row["us"].setdefault(f"flush_{flush}" if flush else "no_flush", []).append(round(ms * 1000, 2))
        print(row, flush=True)
        rows.append(row)
save("dev_l2_flush_check", rows)
