"""Both GEMMs of a layer with the down GEMM launched normally or as a programmatic dependent
(``programmatic_launch=True``) on the H200, for the five model shapes at T = 1, 16, 128 (dev
check, not a test; CUDA graph, L2 flushed, median of 20, each variant timed twice). Writes
$OUT/pdl_check.json; the run of 2026-11-28 is benchmarks/results/dev_pdl_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_pdl_check.py
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import layer_weights, time_cuda

import staticbatch_moe as moe

rows = []

for model in moe.MODEL_SHAPES:
    h, i, e, k = moe.MODEL_SHAPES[model]
    w1, w2 = layer_weights(h, i, e)
    for t in (1, 16, 128):
        g = torch.Generator(device="cuda").manual_seed(t)
        ids = torch.rand(t, e, device="cuda", generator=g).topk(k, dim=1).indices.to(torch.int32)
        plan = moe.route_plan(ids, e)
        x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        mid = torch.empty(t * k, i, device="cuda", dtype=torch.bfloat16)
        y = torch.empty(t * k, h, device="cuda", dtype=torch.bfloat16)
        res = {}
        for pdl in (False, True, False, True):
            def f(pdl=pdl):
                moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid)
                moe.grouped_gemm(mid, w2, plan, gather=False, out=y, programmatic_launch=pdl)
            res.setdefault(pdl, []).append(round(time_cuda(f, reps=20, flush_l2=True)["median_ms"] * 1e3, 1))
        print(model, t, "us plain", res[False], "pdl", res[True], flush=True)
        rows.append({"model": model, "t": t, "plain_us": res[False], "pdl_us": res[True]})
    w1 = w2 = None  # free this model's weights before the next one
    torch.cuda.empty_cache()

json.dump(rows, open(os.path.join(os.environ.get("OUT", "/tmp"), "pdl_check.json"), "w"), indent=1)
