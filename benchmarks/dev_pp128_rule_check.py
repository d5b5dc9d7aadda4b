"""The heuristic with and without USE_PINGPONG128 (128 x 192 ping-pong cluster tiles for the 128-row
classes where K <= PINGPONG128_MAX_K), both GEMMs of the layer as bench_grouped_gemm times them
(dev check on the H200, not a test).

Every point of the benchmark grid whose tile classes the switch changes, uniform and skewed
routing: the gate/up GEMM (gathered, SiLU) then the down GEMM as a programmatic dependent, each
with the classes the heuristic picks with the switch on (``on``) and off (``off``). Outputs
NaN-poisoned and compared bit for bit. Five interleaved repeats of a median of 10 replays, L2
read-flushed. Result: benchmarks/results/dev_pp128_rule_check.json. With points given, also the
switch replacing 256-wide cooperative tiles (``wide``: ``PINGPONG128_WIDTHS = (192, 256)``), seven
repeats, saved as dev_pp128_rule_check_repeat.json.

Run::

    PYTHONPATH=. python benchmarks/dev_pp128_rule_check.py [MODEL:T:ROUTING ...]
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


SETTINGS = {"off": {"USE_PINGPONG128": False}, "on": {},
            "wide": {"PINGPONG128_WIDTHS": (192, 256)}}


def classes_with(setting: str, model: str, t: int) -> dict:
    """The layer's tile classes with the module switches of ``SETTINGS[setting]``."""
    old = {name: getattr(cfgmod, name) for name in SETTINGS[setting]}
    for name, value in SETTINGS[setting].items():
        setattr(cfgmod, name, value)
    cfgmod.choose_config.cache_clear()
    cfgmod.choose_tile_classes.cache_clear()
    try:
        return layer_classes(model, t)
    finally:
        for name, value in old.items():
            setattr(cfgmod, name, value)
        cfgmod.choose_config.cache_clear()
        cfgmod.choose_tile_classes.cache_clear()


def main() -> None:
    # Default: the shipped switch (on / off) wherever it changes the classes. With arguments
    # MODEL:T:ROUTING ...: those points, also with 256-wide cooperative tiles replaced (wide),
    # seven repeats, saved as dev_pp128_rule_check_repeat.
    names, result, repeats = ("off", "on"), "dev_pp128_rule_check", 5
    if len(sys.argv) > 1:
        names, result, repeats = ("off", "on", "wide"), "dev_pp128_rule_check_repeat", 7
        pts = [(m, int(t), rt, {n: classes_with(n, m, int(t)) for n in names})
               for m, t, rt in (a.split(":") for a in sys.argv[1:])]
    else:
        pts = []
        for model in MODELS:
            for t in (1024, 4096, 16384):
                v = {n: classes_with(n, model, t) for n in names}
                if v["on"] != v["off"]:
                    pts += [(model, t, rt, v) for rt in ("uniform", "skewed")]
    cfgs = {c.config for *_, v in pts for cls in v.values() for cl in cls.values() for c in cl}
    sb.compile_many([(cfgmod.kernel_source(c), c.kernel_name) for c in cfgs])
    rows = []
    for model, t, rt, v in pts:
        h, i, e, k = moe.MODEL_SHAPES[model]
        w1, w2, x, plan = layer_point(model, t, rt)
        info = {"model": model, "T": t, "routing": rt}
        info.update({f"{n}_kernels": {g: [c.config.kernel_name for c in cl] for g, cl in v[n].items()} for n in names})
        calls, outs = {}, {}
        for name, cl in v.items():
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
        info["bit_identical"] = all(torch.equal(outs[n][:valid], outs["off"][:valid]) for n in names)
        info.update(time_interleaved(calls, repeats=repeats))
        print(info, flush=True)
        rows.append(info)
        w1 = w2 = x = None
        calls, outs = {}, {}
        torch.cuda.empty_cache()
    save(result, rows, {"note": f"ms, both GEMMs (down as a programmatic dependent), {repeats} interleaved repeats"})


if __name__ == "__main__":
    main()
