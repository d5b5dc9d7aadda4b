"""The heuristic with and without USE_PINGPONG128_SHORT_K (128 x 192 ping-pong cluster tiles
instead of 64-row ping-pong tiles where K <= PINGPONG128_SHORT_K), both GEMMs of the layer exactly
as bench_grouped_gemm times them (dev check on the H200, not a test).

Every point of the benchmark grid whose tile classes the switch changes, uniform and skewed
routing: ``grouped_gemm`` with the heuristic's tiles (``config=None``, so the programmatic launch
of the down GEMM and of later classes follows ``programmatic_pays`` as in the benchmark), the
switch set (and the heuristic's caches cleared) inside each call, so that every capture and
replay sees its own setting. Outputs NaN-poisoned and compared bit for bit. Seven interleaved
repeats of a median of 10 replays, L2 read-flushed. Result:
benchmarks/results/dev_short_k_rule_check.json; with a suffix argument (a second machine)
eleven repeats, saved as ``dev_short_k_rule_check_<suffix>.json``.

The switch lived in ``staticbatch_moe/_gemm_config.py`` at ``b00d5ac`` and was reverted in the
next commit (the layer was level on two machines); run this script on that commit::

    PYTHONPATH=. python benchmarks/dev_short_k_rule_check.py [SUFFIX]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import layer_classes, layer_point, save, time_interleaved

import staticbatch_moe as moe
from staticbatch_moe import _gemm_config as cfgmod

MODELS = ("Mixtral-8x7B", "Qwen3-30B-A3B", "DeepSeek-V3", "Qwen3-235B-A22B", "GPT-OSS-120B")
TS = (1, 16, 128, 1024, 4096, 16384)


def set_switch(on: bool) -> None:
    cfgmod.USE_PINGPONG128_SHORT_K = on
    cfgmod.choose_config.cache_clear()
    cfgmod.choose_tile_classes.cache_clear()


def classes_with(on: bool, model: str, t: int) -> dict:
    set_switch(on)
    try:
        return layer_classes(model, t)
    finally:
        set_switch(True)


def main() -> None:
    if not hasattr(cfgmod, "USE_PINGPONG128_SHORT_K"):
        sys.exit("dev_short_k_rule_check: the switch was reverted after b00d5ac; run this script on that commit")
    suffix = "".join(f"_{a}" for a in sys.argv[1:])
    repeats = 11 if suffix else 7
    pts = []
    for model in MODELS:
        for t in TS:
            v = {n: classes_with(n == "on", model, t) for n in ("off", "on")}
            if v["on"] != v["off"]:
                pts += [(model, t, rt, v) for rt in ("uniform", "skewed")]
    rows = []
    for model, t, rt, v in pts:
        h, i, e, k = moe.MODEL_SHAPES[model]
        w1, w2, x, plan = layer_point(model, t, rt)
        info = {"model": model, "T": t, "routing": rt}
        info.update({f"{n}_kernels": {g: [(c.config.kernel_name, c.min_rows, c.max_rows) for c in cl]
                                      for g, cl in v[n].items()} for n in v})
        calls, outs = {}, {}
        for name in v:
            mid = torch.full((t * k, i), float("nan"), device="cuda", dtype=torch.bfloat16)
            y = torch.full((t * k, h), float("nan"), device="cuda", dtype=torch.bfloat16)

            def fn(mid=mid, y=y, on=name == "on") -> None:  # type: ignore[no-untyped-def]
                set_switch(on)
                moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid)
                moe.grouped_gemm(mid, w2, plan, gather=False, out=y, programmatic_launch=True)  # as the benchmark
            fn()
            torch.cuda.synchronize()
            outs[name], calls[name] = y, fn
        valid = int(plan.expert_starts[-1])
        info["nan_free"] = not bool(torch.isnan(outs["on"][:valid]).any())
        info["bit_identical"] = bool(torch.equal(outs["on"][:valid], outs["off"][:valid]))
        info.update(time_interleaved(calls, repeats=repeats))
        set_switch(True)
        print(info, flush=True)
        rows.append(info)
        w1 = w2 = x = None
        calls, outs = {}, {}
        torch.cuda.empty_cache()
    save("dev_short_k_rule_check" + suffix, rows,
         {"note": f"ms, both GEMMs with the heuristic's tiles (down programmatic as the benchmark), {repeats} "
                  "interleaved repeats"})


if __name__ == "__main__":
    main()
