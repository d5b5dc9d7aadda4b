"""Do power-of-two weight row strides (K * 2 bytes) slow the decode weight stream (DRAM channel
camping)? Each decode GEMM alone on the H200 with its weight rows padded by 0, 32, 64 or 128
elements (the TMA map takes the padded row stride; the kernel reads the same K columns), four
model shapes at T = 1, 16, 128 (dev check, not a test; CUDA graph, L2 flushed, median of 30,
each variant timed twice, outputs compared bitwise with pad 0). Writes
benchmarks/results/dev_weight_pad_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_weight_pad_check.py
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch
from bench_grouped_gemm import MODELS, routing
from common import save, time_cuda

import staticbatch as sb
import staticbatch_moe as moe
from staticbatch_moe import _gemm_config as c
from staticbatch_moe import gemm as gm


def strided_desc(w, cfg):  # the weight map with w's own row stride (rows may be padded)
    e, n, k = w.shape
    return sb.tensor_map(w, [k, n, e], [w.stride(1) * 2, w.stride(0) * 2], [64, cfg.block_n // cfg.cluster, 1], name="w")


c.weight_tma_descriptor = strided_desc
gm._descriptor_cache.clear()


def run(a, w, plan, n, k, gather, act, out, cfg, offsets):
    gm._launch(cfg, 0, a, a.stride(0) if a.shape[0] > 1 else k, w, out, plan, n, k, gather, offsets, None, False)


rows = []
for model in ("Qwen3-30B-A3B", "Qwen3-235B-A22B", "Mixtral-8x7B", "GPT-OSS-120B"):
    h, i, e, k = MODELS[model]
    for t in (1, 16, 128):
        plan = moe.route_plan(routing("uniform", t, e, k, seed=t), e)
        x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        mid = torch.randn(plan.num_rows, i, device="cuda", dtype=torch.bfloat16)
        row = {"model": model, "T": t, "us": {}, "equal": {}}
        for gemm, (n, kk, a, gather, act) in {"gate_up": (2 * i, h, x, True, "silu_and_mul"),
                                              "down": (h, i, mid, False, None)}.items():
            cfg = c.choose_config(t * k, e, n, kk, "bf16", act, gather)
            offs = plan.tile_offsets(cfg.block_m, cfg.block_n, n)
            out = torch.empty(plan.num_rows, n // 2 if act else n, device="cuda", dtype=torch.bfloat16)
            base = None
            torch.manual_seed(0)
            w0 = torch.randn(e, n, kk, device="cuda", dtype=torch.bfloat16) / kk**0.5
            for pad in (0, 32, 64, 128):
                full = torch.zeros(e, n, kk + pad, device="cuda", dtype=torch.bfloat16)
                full[:, :, :kk] = w0
                w = full[:, :, :kk]
                out.fill_(float("nan"))
                run(a, w, plan, n, kk, gather, act, out, cfg, offs)
                torch.cuda.synchronize()
                if base is None:
                    base = out.clone()
                row["equal"][f"{gemm}_pad{pad}"] = bool(torch.equal(out, base))
                for _ in range(2):
                    ms = time_cuda(lambda: run(a, w, plan, n, kk, gather, act, out, cfg, offs), reps=30, flush_l2=True,
                                   warmup_ms=10)["median_ms"]
                    row["us"].setdefault(f"{gemm}_pad{pad}", []).append(round(ms * 1000, 2))
                gm._descriptor_cache.clear()
            del w0
            torch.cuda.empty_cache()
        print(json.dumps(row), flush=True)
        rows.append(row)
save("dev_weight_pad_check", rows)
