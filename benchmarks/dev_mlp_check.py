"""Both GEMMs of a decode layer in one launch (``grouped_mlp`` with a forced tile, 64 or 128
wide, ring of 12 / 8 / 6 stages) against the two launches the layer runs (gate/up, then down as
a programmatic dependent), on the H200 for the five model shapes at T = 1, 4, 16, 128 (dev
check, not a test; CUDA graph, L2 flushed, median of 30, each variant timed twice; outputs
compared bitwise with the two launches first). Writes benchmarks/results/dev_mlp_check.json.
``--flush read`` reads the flush buffer instead of writing it (the benchmark's method since
``ef46028``) and writes dev_mlp_check_read_flush.json; ``--ts`` picks the token counts.

Run::

    PYTHONPATH=. python benchmarks/dev_mlp_check.py [--flush read] [--ts 1,4]
"""
import argparse
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grouped_gemm import routing
from common import layer_weights, save, time_cuda

import staticbatch_moe as moe
from staticbatch_moe import _gemm_config as cfgmod

ap = argparse.ArgumentParser()
ap.add_argument("--flush", default="write", choices=("write", "read"))
ap.add_argument("--ts", default="1,4,16,128")
args = ap.parse_args()
flush = True if args.flush == "write" else "read"
rows = []
for model, (h, i, e, k) in moe.MODEL_SHAPES.items():
    torch.manual_seed(0)
    w1, w2 = layer_weights(h, i, e)
    for t in map(int, args.ts.split(",")):
        plan = moe.route_plan(routing("uniform", t, e, k, seed=t), e)
        x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        y = torch.empty(plan.num_rows, h, device="cuda", dtype=torch.bfloat16)
        block_m = cfgmod.choose_config(t * k, e, 2 * i, h, "bf16", "silu_and_mul", True).block_m
        variants: dict = {"two_launches": False}
        for bn in (64, 128):
            tile = cfgmod._swap_config(block_m, bn, "silu_and_mul", "bf16", True)
            for stages in sorted({min(s, tile.stages) for s in ((12, 8, 6) if bn == 128 else (12,))}, reverse=True):
                variants[f"one_bn{bn}_s{stages}"] = dataclasses.replace(tile, stages=stages)
        ref = moe.grouped_mlp(x, w1, w2, plan, config=False).clone()
        row: dict = {"model": model, "T": t, "block_m": block_m, "bitwise_equal": {}, "us": {}}
        for name, cfg in variants.items():
            y.fill_(float("nan"))
            moe.grouped_mlp(x, w1, w2, plan, out=y, config=cfg)
            torch.cuda.synchronize()
            row["bitwise_equal"][name] = bool(torch.equal(y, ref))
        for _ in range(2):
            for name, cfg in variants.items():
                ms = time_cuda(lambda cfg=cfg: moe.grouped_mlp(x, w1, w2, plan, out=y, config=cfg), reps=30,
                               flush_l2=flush, warmup_ms=15)["median_ms"]
                row["us"].setdefault(name, []).append(round(ms * 1000, 2))
        print(row, flush=True)
        rows.append(row)
    torch.cuda.empty_cache()
save("dev_mlp_check" if args.flush == "write" else "dev_mlp_check_read_flush", rows)
