"""Concurrent classes against the same classes one launch after the other (dev check on the H200,
not a test).

Where a call's heuristic classes are a compute-bound normal-mode class and a swap-mode class
(``_gemm_config.concurrent_pair``: DeepSeek-V3 and GPT-OSS-120B at T = 1024 and 4096), the hot
launch runs on a share of the SMs decided on the GPU and the cold launch starts beside it
(``USE_CONCURRENT_CLASSES``). This times both GEMMs of a layer as bench_grouped_gemm calls them
(tiled weights, the down GEMM a programmatic dependent), with the classes one after the other
(``sequential``), concurrent (``concurrent``), and concurrent with the hot share moved by scaling
``SPLIT_FLOPS_PER_BYTE`` (``x0.7``: more SMs to the hot launch, ``x1.4``: fewer). Outputs must be
bit-identical across the variants. Five interleaved repeats of a median of 10 replays, L2
read-flushed. Result: benchmarks/results/dev_concurrent_split_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_concurrent_split_check.py [--points GPT-OSS-120B:4096:skewed]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import hopper_points, layer_classes, save, tiled_layer_point, time_interleaved  # noqa: E402

import staticbatch as sb  # noqa: E402
import staticbatch_moe as moe  # noqa: E402
from staticbatch_moe import _gemm_config as cfgmod  # noqa: E402

POINTS = [(m, t, r) for m in ("DeepSeek-V3", "GPT-OSS-120B") for t in (4096, 1024) for r in ("skewed", "uniform")]
#: variant -> (USE_CONCURRENT_CLASSES, factor on SPLIT_FLOPS_PER_BYTE, USE_DYNAMIC_FITTED)
ALL_VARIANTS = {"sequential": (False, 1.0, False), "concurrent": (True, 1.0, False), "x0.7": (True, 0.7, False),
                "x1.4": (True, 1.4, False), "dynamic_fitted": (True, 1.0, True)}
#: ``DEV_VARIANTS=a,b`` picks some (the first is the reference of the ratios and bit checks).
VARIANTS = {n: ALL_VARIANTS[n] for n in os.environ.get("DEV_VARIANTS", "sequential,concurrent,x0.7,x1.4").split(",")}
BASE = cfgmod.SPLIT_FLOPS_PER_BYTE
FIRST = next(iter(VARIANTS))


def main() -> int:
    points = hopper_points("dev_concurrent_split_check", POINTS)
    if points is None:
        return 0
    cfgs = {c.config for model, t, _ in points for g in layer_classes(model, t, tiled_w=True).values() for c in g}
    cfgs |= {cfgmod.with_dynamic_fitted(c) for c in cfgs}
    sb.compile_many([(cfgmod.kernel_source(c), c.kernel_name) for c in cfgs])
    rows = []
    for model, t, rt in points:
        h, i, e, k = moe.MODEL_SHAPES[model]
        w1, w2, x, plan = tiled_layer_point(model, t, rt)
        mid = torch.empty(plan.num_rows, i, device="cuda", dtype=torch.bfloat16)
        out = torch.empty(plan.num_rows, h, device="cuda", dtype=torch.bfloat16)
        counts = plan.expert_counts.tolist()
        row = {"model": model, "T": t, "routing": rt, "max_rows": max(counts),
               "classes": {g: [(c.config.kernel_name, c.min_rows, c.max_rows) for c in cl]
                           for g, cl in layer_classes(model, t, tiled_w=True).items()}}
        calls = {}
        ref = None
        for name, (on, factor, dyn) in VARIANTS.items():
            def fn(on=on, factor=factor, dyn=dyn, x=x, w1=w1, w2=w2, mid=mid, out=out, plan=plan) -> None:  # type: ignore[no-untyped-def]
                saved = cfgmod.USE_CONCURRENT_CLASSES, cfgmod.SPLIT_FLOPS_PER_BYTE, cfgmod.USE_DYNAMIC_FITTED
                cfgmod.USE_CONCURRENT_CLASSES, cfgmod.SPLIT_FLOPS_PER_BYTE, cfgmod.USE_DYNAMIC_FITTED = on, BASE * factor, dyn
                try:
                    moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid)
                    moe.grouped_gemm(mid, w2, plan, gather=False, out=out, programmatic_launch=True)
                finally:
                    cfgmod.USE_CONCURRENT_CLASSES, cfgmod.SPLIT_FLOPS_PER_BYTE, cfgmod.USE_DYNAMIC_FITTED = saved
            mid.fill_(float("nan"))
            out.fill_(float("nan"))
            fn()
            torch.cuda.synchronize()
            if ref is None:
                ref = (mid.clone(), out.clone())
            row[f"{name}_bit_identical"] = bool(torch.equal(mid, ref[0]) and torch.equal(out, ref[1]))
            calls[name] = fn
        ms = time_interleaved(calls, repeats=5)
        row["ms"] = ms
        med = {n: sorted(v)[len(v) // 2] for n, v in ms.items()}
        row["ratio_to_" + FIRST] = {n: round(med[n] / med[FIRST], 4) for n in med}
        print({kk: v for kk, v in row.items() if kk not in ("ms", "classes")}, med, flush=True)
        rows.append(row)
        calls = {}
        w1 = w2 = x = mid = out = ref = None
        torch.cuda.empty_cache()
    save("dev_concurrent_split_check" + os.environ.get("DEV_TAG", ""), rows, {"note": "ms, both GEMMs as bench_grouped_gemm calls them, tiled "
                                                      "weights; five interleaved repeats"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
