"""Tile order spread over the task order (dev check on the H200, not a test).

Each block walks the tile ids blockIdx.x, blockIdx.x + gridDim.x, ..., and tile ids follow the
task (expert) order, so a wave of blocks takes one stretch of the task order. With skewed
routing a hot expert's tiles (compute-bound, its weights hot in the L2) fill whole waves, and the
cold experts' tiles (weight streaming from DRAM) fill others: the tensor cores and DRAM take
turns instead of working together. ``spread_tile`` (macro ``SB_SPREAD=G``) cuts the tile ids
into G segments of whole pairs, visited round robin, so each wave takes tiles from G places.

This times both GEMMs of a layer (the heuristic's tiles, as bench_grouped_gemm calls them) with
G = 1 (the shipped order), 4, 8 and 16, under uniform and skewed routing, at the points where
the skew floor fails or is near (T = 4096; Qwen3-235B-A22B T = 1024, Qwen3-30B-A3B T = 16384).
Three interleaved repeats of a median of 10 replays, L2 read-flushed; outputs compared with
G = 1. Result: benchmarks/results/dev_spread_check.json.

Slower at every point and every G, increasingly with G (DeepSeek-V3 T = 4096 skewed 9.24 -> 9.10 /
9.85 / 11.09 ms, uniform 7.51 -> 8.03 / 8.94 / 10.48): the kernel change was removed. To rerun,
restore it: in grouped_gemm.cuh, ``spread_tile<G>(tile, total)`` maps pair p = tile >> 1 (of
q = (total >> 1) / G pairs per segment, p < q * G) to ((p % G) * q + p / G) << 1 | (tile & 1), and
every ``mapper.map(tile)`` becomes a fresh search (``mapper.lo = 0``) of ``spread_tile(tile)``.

Run::

    PYTHONPATH=. python benchmarks/dev_spread_check.py [MODEL_PREFIX]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import layer_classes, layer_inputs, layer_plan, save, time_interleaved

import staticbatch as sb
import staticbatch_moe as moe
import staticbatch_moe.gemm as gemm_mod
from staticbatch_moe._gemm_config import kernel_source

SPREADS = (1, 4, 8, 16)
_KERNELS: dict[int, dict] = {g: {} for g in SPREADS}
pts = [("DeepSeek-V3", 4096), ("GPT-OSS-120B", 4096), ("Qwen3-235B-A22B", 4096), ("Qwen3-30B-A3B", 4096),
       ("Qwen3-235B-A22B", 1024), ("Qwen3-30B-A3B", 16384)]
if len(sys.argv) > 1:
    pts = [p for p in pts if p[0].startswith(sys.argv[1])]


def use_spread(g: int) -> None:
    """Select the tile order for the next compile / launch."""
    os.environ["STATICBATCH_NVRTC_OPTIONS"] = f"-DSB_SPREAD={g}" if g > 1 else ""
    gemm_mod._kernels = _KERNELS[g]


def main() -> None:
    cfgs = {c.config for model, t in pts for g in layer_classes(model, t).values() for c in g}
    for g in SPREADS:
        use_spread(g)
        sb.compile_many([(kernel_source(c), c.kernel_name) for c in cfgs])
    rows = []
    for model, t in pts:
        h, i, e, k = moe.MODEL_SHAPES[model]
        w1, w2, x = layer_inputs(model, t)
        m = t * k
        for kind in ("uniform", "skewed"):
            plan = layer_plan(model, t, kind)
            info = {"model": model, "T": t, "routing": kind, "max_rows": int(plan.expert_counts.max())}
            calls = {}
            ref = None
            for g in SPREADS:
                mid = torch.full((m, i), float("nan"), device="cuda", dtype=torch.bfloat16)
                y = torch.full((m, h), float("nan"), device="cuda", dtype=torch.bfloat16)

                def both(g=g, plan=plan, mid=mid, y=y) -> None:  # type: ignore[no-untyped-def]
                    use_spread(g)
                    moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid)
                    moe.grouped_gemm(mid, w2, plan, gather=False, out=y, programmatic_launch=True)

                both()
                torch.cuda.synchronize()
                if ref is None:
                    ref = y.clone()
                else:
                    info[f"g{g}_bit_identical"] = bool(torch.equal(y, ref))
                calls[f"g{g}"] = both
            info.update(time_interleaved(calls))
            print(info, flush=True)
            rows.append(info)
        w1 = w2 = x = None
        torch.cuda.empty_cache()
    use_spread(1)
    save("dev_spread_check", rows, {"note": "ms, both GEMMs, heuristic tiles, three interleaved repeats"})


if __name__ == "__main__":
    main()
