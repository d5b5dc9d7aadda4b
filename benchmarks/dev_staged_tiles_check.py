"""Gate/up (staged gather) and down GEMM times of three normal-mode tiles at mid-to-large T on the H200
(dev check, not a test; CUDA-graph replay, L2 flushed, median of 10). Prints one line per point;
the run of 2026-11-28 is in benchmarks/results/dev_staged_tiles_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_staged_tiles_check.py
"""
import dataclasses
import sys

import torch

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
from common import layer_weights, time_cuda

import staticbatch_moe as moe
from staticbatch_moe._gemm_config import _normal_config, choose_config

torch.manual_seed(0)
for model, t in (("Mixtral-8x7B", 1024), ("Qwen3-30B-A3B", 1024), ("Qwen3-30B-A3B", 4096), ("Qwen3-235B-A22B", 1024),
                 ("Qwen3-235B-A22B", 4096), ("GPT-OSS-120B", 4096), ("DeepSeek-V3", 4096)):
    h, i, e, k = moe.MODEL_SHAPES[model]
    x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
    w1, w2 = layer_weights(h, i, e)
    ids = torch.rand(t, e, device="cuda").topk(k, dim=1).indices.to(torch.int32)
    plan = moe.route_plan(ids, e)
    mid = torch.empty(plan.num_rows, i, device="cuda", dtype=torch.bfloat16)
    y = torch.empty(plan.num_rows, h, device="cuda", dtype=torch.bfloat16)
    up0 = choose_config(plan.num_rows, e, 2 * i, h, "bf16", "silu_and_mul", True)
    dn0 = choose_config(plan.num_rows, e, h, i, "bf16", None, False)
    res = {"chosen": (up0.kernel_name, dn0.kernel_name)}
    kw = dict(activation="silu_and_mul", dtype="bf16", gather=True)
    for name, (bm, bn, pp) in {"128x256": (128, 256, False), "pp64x256": (64, 256, True), "128x128": (128, 128, False)}.items():
        up = dataclasses.replace(_normal_config(bm, bn, pp, **kw), gather_mode="staged")
        dn = _normal_config(bm, bn, pp, None, "bf16", False)
        moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid, config=up)
        res["up_" + name] = round(time_cuda(lambda: moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid, config=up), reps=10, flush_l2=True)["median_ms"], 4)
        res["dn_" + name] = round(time_cuda(lambda: moe.grouped_gemm(mid, w2, plan, gather=False, out=y, config=dn), reps=10, flush_l2=True)["median_ms"], 4)
    print(model, t, res, flush=True)
