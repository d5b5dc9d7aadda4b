"""Development check of the gate/up GEMM's gather methods on the H200 (not a test).

For the five model shapes of shared/GPU.md at T = 1024, 4096 and 16384 (uniform routing), the
configuration ``choose_config`` picks is timed three ways: its tiles with the cp.async gather,
the same tiles with the staged gather (rows copied to a workspace in the kernel's first phase,
grid barrier, then TMA), and the same tiles without gather on rows grouped beforehand (the
upper bound). Each variant's output must be bit-identical to the first one's (same tiles, same
accumulation order). CUDA-graph replay, L2 flushed, median of 10. Written to
``benchmarks/results/dev_staged_gather_check.json`` (and $OUT).

Run::

    PYTHONPATH=. python benchmarks/dev_staged_gather_check.py
"""

from __future__ import annotations

import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import save, time_cuda  # noqa: E402

import staticbatch_moe as moe  # noqa: E402
from staticbatch_moe._gemm_config import choose_config  # noqa: E402

POINTS = [(m, t) for m in moe.MODEL_SHAPES for t in (1024, 4096, 16384)]


def main() -> int:
    torch.manual_seed(0)
    rows = []
    for model, t in POINTS:
        h, i, e, k = moe.MODEL_SHAPES[model]
        x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        w1 = moe.pack_gate_up(torch.randn(e, 2 * i, h, device="cuda", dtype=torch.bfloat16) / h**0.5)
        ids = torch.rand(t, e, device="cuda").topk(k, dim=1).indices.to(torch.int32)
        plan = moe.route_plan(ids, e)
        cfg = choose_config(plan.num_rows, e, 2 * i, h, "bf16", "silu_and_mul", True)
        out = torch.empty(plan.num_rows, i, device="cuda", dtype=torch.bfloat16)
        xg = x[plan.gather_idx.long()].contiguous()
        flops = 2 * plan.num_rows * h * 2 * i
        row: dict = {"model": model, "t": t, "chosen": cfg.kernel_name}
        ref = None
        for mode in ("cp_async", "staged", "nogather"):
            if mode == "staged" and cfg.swap_ab:
                continue  # swap mode has no staged gather
            if mode == "nogather":
                c = dataclasses.replace(cfg, gather=False, gather_mode="cp_async")
                fn = lambda c=c: moe.grouped_gemm(xg, w1, plan, gather=False, activation="silu_and_mul", out=out,  # noqa: E731
                                                  config=c)
            else:
                c = cfg.with_gather_mode(mode)
                fn = lambda c=c: moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=out, config=c)  # noqa: E731
            out.fill_(float("nan"))
            fn()
            torch.cuda.synchronize()
            if ref is None:
                ref = out.clone()
            row[mode + "_same"] = bool(torch.equal(out, ref))
            r = time_cuda(fn, reps=10, flush_l2=True)
            row[mode + "_ms"] = r["median_ms"]
            row[mode + "_tflops"] = flops / r["median_ms"] / 1e9
        print(row, flush=True)
        rows.append(row)
    save("dev_staged_gather_check", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
