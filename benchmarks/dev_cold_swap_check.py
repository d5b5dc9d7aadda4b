"""Swap-mode tiles for the cold experts where the average expert gets 64-row ping-pong tiles
(dev check on the H200, not a test).

With skewed routing at T = 4096 most experts are cold (DeepSeek-V3: 123 of 256 with at most 32
rows, 181 with at most 64) while a few hot ones hold most rows. The heuristic gives every expert
64-row ping-pong tiles there. The variants put experts of at most 64 (or 32) rows in a tile class
of their own with swap-mode (weight-streaming) tiles, ``block_m`` 64 (or 32), 128 weight rows.
Both GEMMs of a layer (down programmatic, as the layer runs them), skewed and uniform routing
(the benchmark's), three interleaved repeats of a median of 10 replays, L2 read-flushed; outputs
compared with the heuristic's (relative norm difference). Result:
benchmarks/results/dev_cold_swap_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_cold_swap_check.py [MODEL_PREFIX]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grouped_gemm import routing
from common import layer_weights, save, time_cuda

import staticbatch_moe as moe
from staticbatch_moe._gemm_config import TileClass, _swap_config, choose_tile_classes

pts = [(m, t, r) for m, t in (("DeepSeek-V3", 4096), ("Qwen3-235B-A22B", 4096), ("GPT-OSS-120B", 4096),
                              ("Qwen3-30B-A3B", 4096), ("DeepSeek-V3", 16384)) for r in ("skewed", "uniform")]
if len(sys.argv) > 1:
    pts = [p for p in pts if p[0].startswith(sys.argv[1])]
rows = []
for model, t, kind in pts:
    h, i, e, k = moe.MODEL_SHAPES[model]
    torch.manual_seed(0)
    w1, w2 = layer_weights(h, i, e)
    plan = moe.route_plan(routing(kind, t, e, k, seed=t), e)
    x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
    m = t * k
    mid = torch.empty(m, i, device="cuda", dtype=torch.bfloat16)
    y = torch.empty(m, h, device="cuda", dtype=torch.bfloat16)
    base_u = choose_tile_classes(m, e, 2 * i, h, "bf16", "silu_and_mul", True, num_tokens=t)
    base_d = choose_tile_classes(m, e, h, i, "bf16", None, False, num_tokens=t)
    variants = {"heuristic": (base_u, base_d)}
    for cut in (64, 32):
        bm = cut
        cu = (TileClass(base_u[0].config, cut, None), TileClass(_swap_config(bm, 128, "silu_and_mul", "bf16", True), 0, cut))
        cd = (TileClass(base_d[0].config, cut, None), TileClass(_swap_config(bm, 128, None, "bf16", False), 0, cut))
        variants[f"swap<={cut}"] = (cu, cd)
    counts = plan.expert_counts.tolist()
    info = {"model": model, "T": t, "routing": kind, "experts_le_32": sum(1 for c in counts if 0 < c <= 32),
            "experts_le_64": sum(1 for c in counts if 0 < c <= 64), "active": sum(1 for c in counts if c), "max_rows": max(counts)}
    calls, outs = {}, {}
    for name, (cu, cd) in variants.items():
        o = torch.empty(m, h, device="cuda", dtype=torch.bfloat16)

        def fn(cu=cu, cd=cd, o=o, w1=w1, w2=w2) -> None:  # type: ignore[no-untyped-def]
            moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid, config=cu)
            moe.grouped_gemm(mid, w2, plan, gather=False, out=o, config=cd, programmatic_launch=True)

        fn()
        calls[name], outs[name] = fn, o
    torch.cuda.synchronize()
    ref = outs["heuristic"]
    for n, o in outs.items():
        info[n + "_rel"] = float((o.float() - ref.float()).norm() / ref.float().norm())
    for n in calls:
        info[n] = []
    for _ in range(3):
        for n, fn in calls.items():
            info[n].append(round(time_cuda(fn, reps=10, flush_l2="read")["median_ms"], 4))
    print(info, flush=True)
    rows.append(info)
    w1 = w2 = None  # free before the next point
    torch.cuda.empty_cache()
save("dev_cold_swap_check", rows, {"note": "ms, both GEMMs of a layer, three interleaved repeats (median of 10 each)"})
