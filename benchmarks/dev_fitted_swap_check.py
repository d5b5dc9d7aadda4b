"""Fitted swap tiles against the heuristic's tiles at T = 128-4096 (dev check on the H200, not
a test).

A fitted swap tile (swap mode, ``block_m`` 128 or 256 tokens) splits each expert's rows evenly
over its m-blocks and runs wgmma with N = the tile's rows rounded up to 16, so that an expert
of 130 rows costs one 144-token tile instead of a full 64-row tile plus a 2-row one
(dev_exact_counts_check: the partial tiles cost 5-21 % at these points). Gate/up with the
staged gather and SiLU, down on grouped rows; each GEMM alone and both (down programmatic, as
the layer runs them); uniform and skewed routing (the benchmark's); three interleaved repeats
of a median of 10 replays, L2 read-flushed; outputs compared with the heuristic's (relative
norm difference). Result: benchmarks/results/dev_fitted_swap_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_fitted_swap_check.py [MODEL_PREFIX]
    PYTHONPATH=. python benchmarks/dev_fitted_swap_check.py small   # T = 16, 128 (dev_fitted_swap_small.json)
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grouped_gemm import routing
from common import layer_weights, save, time_interleaved

import staticbatch_moe as moe
from staticbatch_moe._gemm_config import GemmConfig, _max_stages, choose_tile_classes

SMALL = len(sys.argv) > 1 and sys.argv[1] == "small"  # T = 16 and 128, every model, 128 tokens only
if SMALL:
    pts = [(m, t) for t in (128, 16) for m in moe.MODEL_SHAPES]
else:
    pts = [(m, t) for t in (4096, 1024) for m in moe.MODEL_SHAPES] + [("DeepSeek-V3", 128), ("GPT-OSS-120B", 128)]
    if len(sys.argv) > 1:
        pts = [p for p in pts if p[0].startswith(sys.argv[1])]


def fitted(bm: int, up: bool) -> GemmConfig:
    return GemmConfig(block_m=bm, block_n=128, stages=_max_stages(bm, 128, 12, swap_ab=True), swap_ab=True,
                      activation="silu_and_mul" if up else None, gather=up, gather_mode="staged" if up else "cp_async")


def names(c):  # type: ignore[no-untyped-def]
    return [tc.config.kernel_name for tc in c] if isinstance(c, (tuple, list)) else c.kernel_name


rows = []
for model, t in pts:
    h, i, e, k = moe.MODEL_SHAPES[model]
    torch.manual_seed(0)
    w1, w2 = layer_weights(h, i, e)
    x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
    m = t * k
    for kind in ("uniform", "skewed"):
        plan = moe.route_plan(routing(kind, t, e, k, seed=t), e)
        counts = plan.expert_counts.tolist()
        variants = {"heuristic": (choose_tile_classes(m, e, 2 * i, h, "bf16", "silu_and_mul", True, num_tokens=t),
                                  choose_tile_classes(m, e, h, i, "bf16", None, False, num_tokens=t))}
        for bm in (128,) if SMALL else (128, 256):
            variants[f"fit{bm}"] = (fitted(bm, True), fitted(bm, False))
        info = {"model": model, "T": t, "routing": kind, "active": sum(1 for c in counts if c), "max_rows": max(counts),
                "configs": {n: [names(c) for c in v] for n, v in variants.items()}}
        mid = torch.randn(m, i, device="cuda", dtype=torch.bfloat16)
        calls, outs = {}, {}
        for name, (cu, cd) in variants.items():
            ou = torch.full((m, i), float("nan"), device="cuda", dtype=torch.bfloat16)
            od = torch.full((m, h), float("nan"), device="cuda", dtype=torch.bfloat16)
            ob = torch.full((m, h), float("nan"), device="cuda", dtype=torch.bfloat16)

            def up(cu=cu, ou=ou, plan=plan) -> None:  # type: ignore[no-untyped-def]
                moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=ou, config=cu)

            def down(cd=cd, od=od, plan=plan) -> None:  # type: ignore[no-untyped-def]
                moe.grouped_gemm(mid, w2, plan, gather=False, out=od, config=cd)

            def both(cu=cu, cd=cd, ou=ou, ob=ob, plan=plan) -> None:  # type: ignore[no-untyped-def]
                moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=ou, config=cu)
                moe.grouped_gemm(ou, w2, plan, gather=False, out=ob, config=cd, programmatic_launch=True)

            for g, fn, o in (("up", up, ou), ("down", down, od), ("both", both, ob)):
                fn()
                calls[f"{name}_{g}"], outs[f"{name}_{g}"] = fn, o
        torch.cuda.synchronize()
        for n, o in outs.items():
            ref = outs["heuristic_" + n.split("_")[-1]]
            mm = int(plan.expert_starts[-1])
            info[n + "_rel"] = float((o[:mm].float() - ref[:mm].float()).norm() / ref[:mm].float().norm())
        info.update(time_interleaved(calls))
        print({kk: v for kk, v in info.items() if not kk.endswith("_rel") and kk != "configs"}, flush=True)
        print({kk: round(v, 5) for kk, v in info.items() if kk.endswith("_rel")}, flush=True)
        rows.append(info)
    w1 = w2 = None
    torch.cuda.empty_cache()
save("dev_fitted_swap_small" if SMALL else "dev_fitted_swap_check", rows, {"note": "ms, three interleaved repeats (median of 10 each)"})
