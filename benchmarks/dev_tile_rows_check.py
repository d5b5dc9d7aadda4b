"""Tiled weights in blocks of 64 or of 128 rows (dev check on the H200, not a test).

dev_tiled_cluster_check_pieces.json: copying a tiled weight tile in more, smaller bulk copies
(32- or 16-row pieces instead of 64-row blocks) made both GEMMs slower at every point, up to
38 %. So fewer, larger copies may be faster: blocks of 128 rows (16 KB per k-block) make a
128-row weight tile one copy per stage instead of two. Both are selected at compile time by a
temporary macro ``SB_TILE_ROWS`` (grouped_gemm.cuh, through ``STATICBATCH_NVRTC_OPTIONS``) and
at packing time by ``SB_DEV_TILE_ROWS`` (tile_weight); every layout's kernels are loaded side
by side. Both GEMMs as bench_grouped_gemm calls them, plain weights against tiled weights of
64- and 128-row blocks, three interleaved repeats of a median of 10 replays, L2 read-flushed;
outputs must be bit-identical.

The macros lived only in ``66e2a50`` (reverted in the next commit): run this script at that commit.
Result (dev_tile_rows_check.json, 25 points, T = 1-4096, uniform): 128-row blocks within
-2.2 .. +1.2 % of 64-row blocks, no pattern; not kept.

Run::

    PYTHONPATH=. python benchmarks/dev_tile_rows_check.py [--points Model:T:routing,...]
"""
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (
    compile_configs,
    hopper_points,
    layer_classes,
    layer_point,
    save,
    tiled_layer_weights,
    time_interleaved,
)

import staticbatch_moe as moe
from staticbatch_moe import gemm as gemm_mod

MODELS = ("Qwen3-30B-A3B", "GPT-OSS-120B", "Qwen3-235B-A22B", "Mixtral-8x7B", "DeepSeek-V3")
POINTS = [(m, t, "uniform") for t in (1, 16, 128, 1024, 4096) for m in MODELS]
ROWS = (64, 128)


def _use(rows: int) -> None:
    os.environ["STATICBATCH_NVRTC_OPTIONS"] = f"-DSB_TILE_ROWS={rows}"
    os.environ["SB_DEV_TILE_ROWS"] = str(rows)


def main() -> int:
    points = hopper_points("dev_tile_rows_check", POINTS)
    if points is None:
        return 0
    base = {c.config for m, t, _ in points for cls in layer_classes(m, t).values() for c in cls}
    kernels = {}
    for rows in ROWS:
        _use(rows)
        cfgs = {dataclasses.replace(c, tiled_w=True) for c in base} | (base if rows == ROWS[0] else set())
        print(rows, compile_configs(sorted(cfgs, key=lambda c: c.kernel_name)), flush=True)
        kernels[rows] = {}
    out_rows = []
    for model, t, kind in points:
        w1p, w2, x, plan = layer_point(model, t, kind)
        h, i, _, _ = moe.MODEL_SHAPES[model]
        variants = {"plain": (ROWS[0], w1p, w2)}
        for rows in ROWS:
            _use(rows)
            variants[f"tiled{rows}"] = (rows, *tiled_layer_weights(w1p, w2))
        outs, calls = {}, {}
        for name, (rows, a1, a2) in variants.items():
            mid = torch.full((plan.num_rows, i), float("nan"), device="cuda", dtype=torch.bfloat16)
            y = torch.full((plan.num_rows, h), float("nan"), device="cuda", dtype=torch.bfloat16)

            def fn(mid=mid, y=y, a1=a1, a2=a2, rows=rows, x=x, plan=plan) -> None:  # type: ignore[no-untyped-def]
                _use(rows)
                gemm_mod._kernels = kernels[rows]
                moe.grouped_gemm(x, a1, plan, activation="silu_and_mul", out=mid)
                moe.grouped_gemm(mid, a2, plan, gather=False, out=y, programmatic_launch=True)

            fn()
            torch.cuda.synchronize()
            outs[name], calls[name] = y, fn
        valid = int(plan.expert_starts[-1])
        same = {n: bool(torch.equal(outs["plain"][:valid], o[:valid])) for n, o in outs.items() if n != "plain"}
        ms = time_interleaved(calls, repeats=3, reps=10)
        med = {n: sorted(v)[1] for n, v in ms.items()}
        ratio = {n: round(med[n] / med["plain"], 4) for n in med if n != "plain"}
        out_rows.append({"model": model, "T": t, "routing": kind, "bit_identical": same, "ms": ms, "median_ms": med,
                         "over_plain": ratio})
        print(f"{model} T={t} {kind}: plain {med['plain']:.4f} " + " ".join(f"{n} {r:.3f}" for n, r in ratio.items())
              + f" same {same}", flush=True)
        del w1p, w2, x, plan, variants, outs, calls
        torch.cuda.empty_cache()
    save("dev_tile_rows_check", out_rows, {"note": "both GEMMs, plain against tiled weights of 64- and 128-row "
                                           "blocks; ms, three interleaved repeats"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
