"""Fitted swap tiles on an exact routing (dev probe on the H200, not a test).

With T*k/E = 128 rows per expert (DeepSeek-V3, GPT-OSS T = 4096) every fitted tile has N = 128
and one m-block, the same work as the 128-token swap tile of dev_wide_swap_check (measured there
before the tiles became fitted, on another machine) but with 16-row token boxes and the per-tile
N dispatch. If the fitted tiles keep that pace here, their loss on the uniform routing comes from
the varying N, not from the fitted mechanics. Gate/up (staged gather, SiLU) and down alone,
heuristic against fitted 128 and 256, three interleaved repeats of a median of 10 replays, L2
read-flushed. Result: benchmarks/results/dev_fitted_exact_check.json; with the argument
``stages``, the 128-token tile also with 4 stages instead of 6 (dev_fitted_exact_stages.json).
"""
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import exact_routing, layer_weights, save, time_interleaved

import staticbatch_moe as moe
from staticbatch_moe._gemm_config import choose_config, fitted_config

STAGES = len(sys.argv) > 1 and sys.argv[1] == "stages"  # -> dev_fitted_exact_stages.json
rows = []
for model, t in (("DeepSeek-V3", 4096), ("GPT-OSS-120B", 4096), ("Qwen3-235B-A22B", 4096)):
    h, i, e, k = moe.MODEL_SHAPES[model]
    torch.manual_seed(0)
    w1, w2 = layer_weights(h, i, e)
    x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
    mid = torch.randn(t * k, i, device="cuda", dtype=torch.bfloat16)
    m = t * k
    plan = moe.route_plan(exact_routing(t, e, k), e)
    variants = {"heuristic": (choose_config(m, e, 2 * i, h, "bf16", "silu_and_mul", True),
                              choose_config(m, e, h, i, "bf16", None, False))}
    for bm in (128, 256):
        variants[f"fit{bm}"] = (fitted_config(bm, "silu_and_mul", "bf16", True), fitted_config(bm, None, "bf16", False))
    if STAGES:  # the 128-token tile with the 256-token tile's ring depth (4 stages)
        variants = {n: v for n, v in variants.items() if n != "fit256"}
        variants["fit128_s4"] = tuple(dataclasses.replace(c, stages=4) for c in variants["fit128"])
    info = {"model": model, "T": t, "rows_per_expert": m // e}
    calls = {}
    for name, (cu, cd) in variants.items():
        ou = torch.empty(m, i, device="cuda", dtype=torch.bfloat16)
        od = torch.empty(m, h, device="cuda", dtype=torch.bfloat16)

        def up(cu=cu, ou=ou) -> None:  # type: ignore[no-untyped-def]
            moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=ou, config=cu)

        def down(cd=cd, od=od) -> None:  # type: ignore[no-untyped-def]
            moe.grouped_gemm(mid, w2, plan, gather=False, out=od, config=cd)

        up()
        down()
        calls[name + "_up"], calls[name + "_down"] = up, down
    torch.cuda.synchronize()
    info.update(time_interleaved(calls))
    print(info, flush=True)
    rows.append(info)
    w1 = w2 = None
    torch.cuda.empty_cache()
save("dev_fitted_exact_stages" if STAGES else "dev_fitted_exact_check", rows, {"note": "ms, exact routing (128 or 256 rows per expert), one GEMM each"})
