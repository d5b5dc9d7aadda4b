"""A class of fitted 256-token swap tiles for hot experts over the heuristic's 64-row ping-pong
tiles (dev check on the H200, not a test).

Under skewed routing at T = 4096 a hot expert has thousands of rows (DeepSeek-V3: up to 3822),
which 64-row tiles cover with one weight stream per 64 rows; a fitted 256-token swap tile
streams the weight once per ~256 rows. Fitted tiles for every expert were 4-5 % faster on the
skewed points and slower on the uniform ones (dev_fitted_swap_check.json); as a class for
experts of more than ``cut`` rows the uniform routing pays only an empty launch. Both GEMMs (down
programmatic), uniform and skewed routing (the benchmark's), three interleaved repeats of a median
of 10 replays, L2 read-flushed; outputs compared with the heuristic's. Result:
benchmarks/results/dev_hot_fitted_check.json.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grouped_gemm import routing
from common import layer_weights, save, time_interleaved

import staticbatch_moe as moe
from staticbatch_moe._gemm_config import TileClass, choose_tile_classes, fitted_config, programmatic_pays

pts = [("DeepSeek-V3", 4096), ("GPT-OSS-120B", 4096), ("Qwen3-235B-A22B", 4096), ("Qwen3-30B-A3B", 4096),
       ("Mixtral-8x7B", 1024)]
rows = []
for model, t in pts:
    h, i, e, k = moe.MODEL_SHAPES[model]
    torch.manual_seed(0)
    w1, w2 = layer_weights(h, i, e)
    x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
    m = t * k
    base_u = choose_tile_classes(m, e, 2 * i, h, "bf16", "silu_and_mul", True, num_tokens=t)
    base_d = choose_tile_classes(m, e, h, i, "bf16", None, False, num_tokens=t)
    variants = {"heuristic": (base_u, base_d)}
    for cut in (320, 512):
        variants[f"hot>{cut}"] = (
            (TileClass(fitted_config(256, "silu_and_mul", "bf16", True), cut, None), TileClass(base_u[0].config, 0, cut)),
            (TileClass(fitted_config(256, None, "bf16", False), cut, None), TileClass(base_d[0].config, 0, cut)))
    for kind in ("uniform", "skewed"):
        plan = moe.route_plan(routing(kind, t, e, k, seed=t), e)
        counts = plan.expert_counts.tolist()
        info = {"model": model, "T": t, "routing": kind, "max_rows": max(counts),
                "experts_gt_320": sum(c > 320 for c in counts), "rows_gt_320": sum(c for c in counts if c > 320)}
        calls, outs = {}, {}
        for name, (cu, cd) in variants.items():
            mid = torch.empty(m, i, device="cuda", dtype=torch.bfloat16)
            out = torch.full((m, h), float("nan"), device="cuda", dtype=torch.bfloat16)

            def both(cu=cu, cd=cd, mid=mid, out=out, plan=plan) -> None:  # type: ignore[no-untyped-def]
                moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid, config=cu)
                # As grouped_gemm(config=None) would launch these classes (the first class decides).
                moe.grouped_gemm(mid, w2, plan, gather=False, out=out, config=cd,
                                 programmatic_launch=programmatic_pays(cd[0].config))

            both()
            calls[name], outs[name] = both, out
        torch.cuda.synchronize()
        for name, o in outs.items():
            info[name + "_equal"] = bool(torch.equal(o, outs["heuristic"]))
        info.update(time_interleaved(calls))
        print(info, flush=True)
        rows.append(info)
    w1 = w2 = None
    torch.cuda.empty_cache()
save("dev_hot_fitted_check", rows, {"note": "ms, both GEMMs, three interleaved repeats (median of 10 each)"})
