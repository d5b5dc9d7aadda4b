"""The swap-mode epilogue without activation, before and after its accumulator reads were
paired (dev check on the H200, not a test).

ptxas reported "wgmma.mma_async instructions are serialized due to non wgmma instructions
reading accumulator registers" (C7514) for every swap-mode kernel without activation (the
down GEMMs from decode to T = 1024) and for no other shipped kernel. The epilogue read each
accumulator on its own (``Ops::one(acc[i])``); reading the two of a (token, weight row / row
+ 8) pair together into one packed conversion removes the warning. This script times, in one
process, the heuristic's down GEMM alone and both GEMMs of a layer (down programmatic) at T =
1, 16, 128, 1024 for the five models; run it once per header (``label`` argument) in turns.
Median of 10 replays, L2 read-flushed; the output's relative error against the float32
reference is recorded. Result: benchmarks/results/dev_swap_epilogue_check_<label>.json (the four runs of 2026-11-28 merged into
dev_swap_epilogue_check.json).

Run::

    PYTHONPATH=. python benchmarks/dev_swap_epilogue_check.py LABEL
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grouped_gemm import routing
from common import layer_weights, save, time_cuda

import staticbatch_moe as moe

label = sys.argv[1]
rows = []
for model in moe.MODEL_SHAPES:
    h, i, e, k = moe.MODEL_SHAPES[model]
    torch.manual_seed(0)
    w1, w2 = layer_weights(h, i, e)
    for t in (1, 16, 128, 1024):
        x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        plan = moe.route_plan(routing("uniform", t, e, k, seed=t), e)
        mid = torch.randn(t * k, i, device="cuda", dtype=torch.bfloat16)
        mid2 = torch.empty(t * k, i, device="cuda", dtype=torch.bfloat16)
        out = torch.full((t * k, h), float("nan"), device="cuda", dtype=torch.bfloat16)

        def down() -> None:
            moe.grouped_gemm(mid, w2, plan, gather=False, out=out)

        def both() -> None:
            moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid2)
            moe.grouped_gemm(mid2, w2, plan, gather=False, out=out, programmatic_launch=True)

        down()
        ref = moe.grouped_gemm_reference(mid.float(), w2.float(), plan, gather=False)
        rel = float((out.float() - ref).norm() / ref.norm())
        info = {"label": label, "model": model, "T": t, "rel_err_down": rel,
                "down_ms": round(time_cuda(down, reps=10, flush_l2="read")["median_ms"], 4),
                "both_ms": round(time_cuda(both, reps=10, flush_l2="read")["median_ms"], 4)}
        print(info, flush=True)
        rows.append(info)
    w1 = w2 = None
    torch.cuda.empty_cache()
save(f"dev_swap_epilogue_check_{label}", rows, {"note": "ms, heuristic tiles, one process per header"})
