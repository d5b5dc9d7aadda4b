"""How much the partial last tile of each expert costs at the mid-T points (dev check on the
H200, not a test).

With uniform random routing an expert's row count scatters around the mean (DeepSeek-V3 T = 4096:
128 +- 11), so about half the experts need one more 64-row tile than the mean does, and that tile
carries a few rows while streaming a whole weight tile and running a whole 64-row wgmma chain.
This times the heuristic's tiles (both GEMMs, and each alone) on the benchmark's uniform routing
and on an exact routing with the same T, k and E in which every expert has exactly T*k/E rows
(token t, slot j -> expert (t*k + j) mod E). Same FLOPs and weight bytes; the difference is what
the partial tiles cost (and an upper bound on what a finer token granularity could gain). Three
interleaved repeats of a median of 10 replays, L2 read-flushed. Result:
benchmarks/results/dev_exact_counts_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_exact_counts_check.py [MODEL_PREFIX]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grouped_gemm import routing
from common import exact_routing, layer_weights, save, time_interleaved

import staticbatch_moe as moe
from staticbatch_moe._gemm_config import choose_tile_classes

pts = [("DeepSeek-V3", 4096), ("GPT-OSS-120B", 4096), ("Qwen3-235B-A22B", 4096), ("Qwen3-30B-A3B", 4096),
       ("Mixtral-8x7B", 1024), ("Qwen3-30B-A3B", 1024)]
if len(sys.argv) > 1:
    pts = [p for p in pts if p[0].startswith(sys.argv[1])]


rows = []
for model, t in pts:
    h, i, e, k = moe.MODEL_SHAPES[model]
    torch.manual_seed(0)
    w1, w2 = layer_weights(h, i, e)
    x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
    m = t * k
    cu = choose_tile_classes(m, e, 2 * i, h, "bf16", "silu_and_mul", True, num_tokens=t)
    cd = choose_tile_classes(m, e, h, i, "bf16", None, False, num_tokens=t)
    info = {"model": model, "T": t, "config_up": [c.config.kernel_name for c in cu], "config_down": [c.config.kernel_name for c in cd]}
    calls = {}
    for kind in ("uniform", "exact"):
        ids = routing("uniform", t, e, k, seed=t) if kind == "uniform" else exact_routing(t, e, k)
        plan = moe.route_plan(ids, e)
        counts = plan.expert_counts.tolist()
        info[kind + "_rows_min_max"] = (min(counts), max(counts))
        info[kind + "_tiles64"] = sum(-(-c // 64) for c in counts)
        mid = torch.randn(m, i, device="cuda", dtype=torch.bfloat16)
        out_u = torch.empty(m, i, device="cuda", dtype=torch.bfloat16)
        out_d = torch.empty(m, h, device="cuda", dtype=torch.bfloat16)

        def up(plan=plan, out_u=out_u) -> None:  # type: ignore[no-untyped-def]
            moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=out_u, config=cu)

        def down(plan=plan, mid=mid, out_d=out_d) -> None:  # type: ignore[no-untyped-def]
            moe.grouped_gemm(mid, w2, plan, gather=False, out=out_d, config=cd)

        def both(plan=plan, out_u=out_u, out_d=out_d) -> None:  # type: ignore[no-untyped-def]
            moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=out_u, config=cu)
            moe.grouped_gemm(out_u, w2, plan, gather=False, out=out_d, config=cd, programmatic_launch=True)

        for name, fn in (("up", up), ("down", down), ("both", both)):
            fn()
            calls[f"{kind}_{name}"] = fn
    torch.cuda.synchronize()
    info.update(time_interleaved(calls))
    print(info, flush=True)
    rows.append(info)
    w1 = w2 = None
    torch.cuda.empty_cache()
save("dev_exact_counts_check", rows, {"note": "ms, heuristic tiles, uniform vs exact routing, three interleaved repeats"})
