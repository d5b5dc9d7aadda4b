"""The heuristic with and without USE_PINGPONG128 (128 x 192 ping-pong cluster tiles for the 128-row
classes where K <= PINGPONG128_MAX_K), both GEMMs of the layer as bench_grouped_gemm times them
(dev check on the H200, not a test).

Every point of the benchmark grid whose tile classes the switch changes, uniform and skewed
routing: the gate/up GEMM (gathered, SiLU) then the down GEMM as a programmatic dependent, each
with the classes the heuristic picks with the switch on (``on``) and off (``off``). Outputs
NaN-poisoned and compared bit for bit. Five interleaved repeats of a median of 10 replays, L2
read-flushed. Result: benchmarks/results/dev_pp128_rule_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_pp128_rule_check.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import layer_classes, layer_point, save, time_interleaved

import staticbatch as sb
import staticbatch_moe as moe
from staticbatch_moe import _gemm_config as cfgmod

MODELS = ("Mixtral-8x7B", "Qwen3-30B-A3B", "DeepSeek-V3", "Qwen3-235B-A22B", "GPT-OSS-120B")


def classes_with(flag: bool, model: str, t: int) -> dict:
    old = cfgmod.USE_PINGPONG128
    cfgmod.USE_PINGPONG128 = flag
    cfgmod.choose_config.cache_clear()
    cfgmod.choose_tile_classes.cache_clear()
    try:
        return layer_classes(model, t)
    finally:
        cfgmod.USE_PINGPONG128 = old
        cfgmod.choose_config.cache_clear()
        cfgmod.choose_tile_classes.cache_clear()


def main() -> None:
    pts = []
    for model in MODELS:
        for t in (1024, 4096, 16384):
            on, off = classes_with(True, model, t), classes_with(False, model, t)
            if on != off:
                pts += [(model, t, rt, on, off) for rt in ("uniform", "skewed")]
    cfgs = {c.config for *_, on, off in pts for v in (on, off) for cl in v.values() for c in cl}
    sb.compile_many([(cfgmod.kernel_source(c), c.kernel_name) for c in cfgs])
    rows = []
    for model, t, rt, on, off in pts:
        h, i, e, k = moe.MODEL_SHAPES[model]
        w1, w2, x, plan = layer_point(model, t, rt)
        info = {"model": model, "T": t, "routing": rt,
                "on_kernels": {g: [c.config.kernel_name for c in cl] for g, cl in on.items()},
                "off_kernels": {g: [c.config.kernel_name for c in cl] for g, cl in off.items()}}
        calls, outs = {}, {}
        for name, cl in (("off", off), ("on", on)):
            mid = torch.full((t * k, i), float("nan"), device="cuda", dtype=torch.bfloat16)
            y = torch.full((t * k, h), float("nan"), device="cuda", dtype=torch.bfloat16)

            def fn(mid=mid, y=y, cl=cl) -> None:  # type: ignore[no-untyped-def]
                moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid, config=cl["up"])
                moe.grouped_gemm(mid, w2, plan, gather=False, out=y, config=cl["down"], programmatic_launch=True)
            fn()
            torch.cuda.synchronize()
            outs[name], calls[name] = y, fn
        valid = int(plan.expert_starts[-1])
        info["nan_free"] = not bool(torch.isnan(outs["on"][:valid]).any())
        info["bit_identical"] = bool(torch.equal(outs["on"][:valid], outs["off"][:valid]))
        info.update(time_interleaved(calls, repeats=5))
        print(info, flush=True)
        rows.append(info)
        w1 = w2 = x = None
        calls, outs = {}, {}
        torch.cuda.empty_cache()
    save("dev_pp128_rule_check", rows, {"note": "ms, both GEMMs (down as a programmatic dependent), five "
                                                "interleaved repeats"})


if __name__ == "__main__":
    main()
