"""Is the cooperative launch or the staged copy of the gate/up GEMM what makes the programmatic
down launch slower with 64-row ping-pong tiles? (dev check on the H200, not a test)

GPT-OSS-120B and Qwen3-235B-A22B at T = 4096, uniform routing, both GEMMs with the heuristic's
tiles (programmatic-launch rule off): the down GEMM launched plainly or as a programmatic
dependent, after the gate/up GEMM staged and launched cooperatively (the default), staged and
launched plainly, or gathering by cp.async (no copy, no grid barrier). Three interleaved repeats
of a median of 10 replays, L2 read-flushed. Result: benchmarks/results/dev_pdl_cause_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_pdl_cause_check.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grouped_gemm import routing
from common import layer_weights, save, time_cuda

import staticbatch_moe as moe
import staticbatch_moe.gemm as gemm_mod
from staticbatch_moe import _gemm_config as cfgmod

cfgmod.USE_PROGRAMMATIC_RULE = False
rows = []
for model, t in (("GPT-OSS-120B", 4096), ("Qwen3-235B-A22B", 4096)):
    h, i, e, k = moe.MODEL_SHAPES[model]
    torch.manual_seed(0)
    w1, w2 = layer_weights(h, i, e)
    plan = moe.route_plan(routing("uniform", t, e, k, seed=t), e)
    x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
    m = t * k
    mid = torch.empty(m, i, device="cuda", dtype=torch.bfloat16)
    y = torch.empty(m, h, device="cuda", dtype=torch.bfloat16)
    cu = moe.choose_config(m, e, 2 * i, h, "bf16", "silu_and_mul", True)
    cu_cpa = cu.with_gather_mode("cp_async")
    cd = moe.choose_config(m, e, h, i, "bf16", None, False)
    def pair(up_cfg, pdl, coop=True):  # type: ignore[no-untyped-def]
        def fn(w1=w1, w2=w2) -> None:  # type: ignore[no-untyped-def]
            gemm_mod.USE_COOPERATIVE_LAUNCH = coop
            moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid, config=up_cfg)
            moe.grouped_gemm(mid, w2, plan, gather=False, out=y, config=cd, programmatic_launch=pdl)
            gemm_mod.USE_COOPERATIVE_LAUNCH = True
        return fn
    calls = {"staged_coop_plain": pair(cu, False), "staged_coop_pdl": pair(cu, True),
             "staged_nocoop_plain": pair(cu, False, False), "staged_nocoop_pdl": pair(cu, True, False),
             "cpasync_plain": pair(cu_cpa, False), "cpasync_pdl": pair(cu_cpa, True)}
    for fn in calls.values():
        fn()
    res = {"model": model, "up": cu.kernel_name, "down": cd.kernel_name, **{n: [] for n in calls}}
    for _ in range(3):
        for n, fn in calls.items():
            res[n].append(round(time_cuda(fn, reps=10, flush_l2="read")["median_ms"], 4))
    print(res, flush=True)
    rows.append(res)
    w1 = w2 = None
    torch.cuda.empty_cache()
save("dev_pdl_cause_check", rows, {"note": "ms, both GEMMs of a layer, three interleaved repeats (median of 10)"})
