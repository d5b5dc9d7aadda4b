"""Ring depth of the decode GEMMs on the H200: both GEMMs of a layer as two launches (gate/up,
then down as a programmatic dependent) with the heuristic's tiles at 12 (or its maximum), 8, 6 and
4 stages, and at T = 1 the one-launch grouped_mlp (128 wide) at the same depths; the five model
shapes at T = 1, 16, 128 (dev check, not a test; CUDA graph, L2 flushed, median of 30, each
variant timed twice; every variant's output compared bitwise with the heuristic's first).
Writes benchmarks/results/dev_decode_stages_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_decode_stages_check.py
"""
import dataclasses
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch
from bench_grouped_gemm import MODELS, routing
from common import layer_weights, save, time_cuda

import staticbatch_moe as moe
from staticbatch_moe import _gemm_config as c

rows = []
for model in MODELS:
    h, i, e, k = MODELS[model]
    torch.manual_seed(0)
    w1p, w2 = layer_weights(h, i, e)
    for t in (1, 16, 128):
        plan = moe.route_plan(routing("uniform", t, e, k, seed=t), e)
        x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        mid = torch.empty(plan.num_rows, i, device="cuda", dtype=torch.bfloat16)
        y = torch.empty(plan.num_rows, h, device="cuda", dtype=torch.bfloat16)
        gu = c.choose_config(t * k, e, 2 * i, h, "bf16", "silu_and_mul", True)
        dn = c.choose_config(t * k, e, h, i, "bf16", None, False)
        ref = moe.grouped_mlp(x, w1p, w2, plan, config=False).clone()

        def two(s):
            a = dataclasses.replace(gu, stages=min(s, gu.stages))
            b = dataclasses.replace(dn, stages=min(s, dn.stages))
            return lambda: (moe.grouped_gemm(x, w1p, plan, activation="silu_and_mul", out=mid, config=a),
                            moe.grouped_gemm(mid, w2, plan, gather=False, out=y, config=b, programmatic_launch=True))

        def one(s, bn=128):
            cfg = dataclasses.replace(c._swap_config(gu.block_m, bn, "silu_and_mul", "bf16", True), stages=s)
            return lambda: moe.grouped_mlp(x, w1p, w2, plan, out=y, config=cfg)

        variants = {"two_s12": two(12), "two_s8": two(8), "two_s6": two(6), "two_s4": two(4)}
        if t == 1:
            variants.update({"one_s12": one(12), "one_s8": one(8), "one_s6": one(6), "one_s4": one(4)})
        row = {"model": model, "T": t, "gu": gu.kernel_name, "down": dn.kernel_name}
        for name, fn in variants.items():  # correctness of every variant first
            y.fill_(float("nan"))
            fn()
            torch.cuda.synchronize()
            row.setdefault("equal", {})[name] = bool(torch.equal(y, ref))
        for _ in range(2):
            for name, fn in variants.items():
                ms = time_cuda(fn, reps=30, flush_l2=True, warmup_ms=15)["median_ms"]
                row.setdefault(name, []).append(round(ms * 1000, 2))
        print(json.dumps(row), flush=True)
        rows.append(row)
    torch.cuda.empty_cache()
save("dev_decode_stages_check", rows)
