"""What the hot-expert class of 128-row tiles (``USE_HOT_TALL_CLASS``) costs under uniform routing,
where it finds no expert above 320 rows and its two launches (gate/up, down) end at once
(dev check on the H200, not a test).

Both GEMMs of a layer, as bench_grouped_gemm calls them, T = 4096, uniform routing, for the three
models that get the class: the heuristic's classes (``classes``: since this check, the launch after
the first is a programmatic dependent only where ``programmatic_pays``), the same with every later
launch programmatic (``classes_all_pdl``, the rule before), and without the class
(``average_only``, ``USE_HOT_TALL_CLASS`` off). Five interleaved repeats of a median of 10
replays, L2 read-flushed. Result: benchmarks/results/dev_hot128_uniform_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_hot128_uniform_check.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import layer_classes, layer_point, save, time_interleaved

import staticbatch_moe as moe
from staticbatch_moe import _gemm_config as cfgmod

T = 4096


def main() -> None:
    rows = []
    for model in ("DeepSeek-V3", "GPT-OSS-120B", "Qwen3-235B-A22B"):
        h, i, e, k = moe.MODEL_SHAPES[model]
        w1, w2, x, plan = layer_point(model, T, "uniform")
        m = T * k
        cu, cd = layer_classes(model, T).values()
        info = {"model": model, "T": T, "max_rows": int(plan.expert_counts.max()),
                "classes_up": [c.config.kernel_name for c in cu], "classes_down": [c.config.kernel_name for c in cd]}
        calls = {}
        pays = cfgmod.programmatic_pays
        for name in ("classes", "classes_all_pdl", "average_only"):
            mid = torch.empty(m, i, device="cuda", dtype=torch.bfloat16)
            y = torch.empty(m, h, device="cuda", dtype=torch.bfloat16)

            def both(name=name, mid=mid, y=y) -> None:  # type: ignore[no-untyped-def]
                cfgmod.USE_HOT_TALL_CLASS = name != "average_only"
                cfgmod.programmatic_pays = (lambda c: True) if name == "classes_all_pdl" else pays
                cfgmod.choose_tile_classes.cache_clear()
                # The first launch's rule is unchanged: the gate/up GEMM's is plain, the down
                # GEMM's first (clustered) class pays.
                moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid)
                moe.grouped_gemm(mid, w2, plan, gather=False, out=y, programmatic_launch=True)
                cfgmod.USE_HOT_TALL_CLASS, cfgmod.programmatic_pays = True, pays
                cfgmod.choose_tile_classes.cache_clear()

            both()
            calls[name] = both
        torch.cuda.synchronize()
        info.update(time_interleaved(calls, repeats=5))
        print(info, flush=True)
        rows.append(info)
        w1 = w2 = x = None
        torch.cuda.empty_cache()
    save("dev_hot128_uniform_check", rows, {"note": "ms, both GEMMs, uniform routing, five interleaved repeats"})


if __name__ == "__main__":
    main()
