"""Tile widths of the two decode launches on the H200: gate/up 64 or 128 wide x down 64 or 128
wide x down split-K 1 or 2 (the in-kernel last-slice reduction), both GEMMs of a layer (gate/up,
then down as a programmatic dependent), the five model shapes at T = 1, 2, 4, 8 (dev check, not
a test; CUDA graph, L2 flushed, median of 30, each variant timed twice; "*" marks the
heuristic's pair). Writes benchmarks/results/dev_decode_widths_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_decode_widths_check.py
"""
import itertools
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
    for t in (1, 2, 4, 8):
        plan = moe.route_plan(routing("uniform", t, e, k, seed=t), e)
        x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        mid = torch.empty(plan.num_rows, i, device="cuda", dtype=torch.bfloat16)
        y = torch.empty(plan.num_rows, h, device="cuda", dtype=torch.bfloat16)
        gu = c.choose_config(t * k, e, 2 * i, h, "bf16", "silu_and_mul", True)
        dn = c.choose_config(t * k, e, h, i, "bf16", None, False)
        ref = moe.grouped_mlp(x, w1p, w2, plan, config=False).clone()
        variants = {}
        for bu, bd, sk in itertools.product((64, 128), (64, 128), (1, 2)):
            a = c._swap_config(gu.block_m, bu, "silu_and_mul", "bf16", True)
            b = c._swap_config(dn.block_m, bd, None, "bf16", False, split_k=sk)
            name = f"gu{bu}_dn{bd}" + (f"_sk{sk}" if sk > 1 else "")
            if a == gu and b == dn:
                name += "*"
            variants[name] = (a, b)
        row = {"model": model, "T": t, "heuristic": [gu.kernel_name, dn.kernel_name], "ok": {}, "us": {}}

        def pair(a, b):
            return lambda: (moe.grouped_gemm(x, w1p, plan, activation="silu_and_mul", out=mid, config=a),
                            moe.grouped_gemm(mid, w2, plan, gather=False, out=y, config=b, programmatic_launch=True))

        for name, (a, b) in variants.items():
            y.fill_(float("nan"))
            pair(a, b)()
            torch.cuda.synchronize()
            row["ok"][name] = float(((y.float() - ref.float()).norm() / ref.float().norm()).item())
        for _ in range(2):
            for name, (a, b) in variants.items():
                ms = time_cuda(pair(a, b), reps=30, flush_l2=True, warmup_ms=10)["median_ms"]
                row["us"].setdefault(name, []).append(round(ms * 1000, 2))
        best = min(row["us"], key=lambda n: sum(row["us"][n]))
        print(json.dumps({"model": model, "T": t, "best": best, "us": row["us"]}), flush=True)
        rows.append(row)
    torch.cuda.empty_cache()
save("dev_decode_widths_check", rows)
