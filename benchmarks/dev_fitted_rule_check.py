"""The heuristic with and without fitted swap tiles (dev check on the H200, not a test).

``USE_FITTED_SWAP`` (fitted 128-token tiles for every expert at about 64 rows per expert) and
``USE_FITTED_CLASS`` (a class of fitted tiles for experts of more than 32 rows at 128-511
tokens) against both off, as the layer calls the GEMMs (``config=None``; down programmatic
where the rule says it pays), T = 128 and 1024 for the five models, uniform and skewed routing
(the benchmark's). Three interleaved repeats of a median of 10 replays, L2 read-flushed;
outputs compared between the two. Result: benchmarks/results/dev_fitted_rule_check.json.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grouped_gemm import routing
from common import layer_weights, save, time_interleaved

import staticbatch_moe as moe
from staticbatch_moe import _gemm_config as cfgmod


def flags(on: bool) -> None:
    cfgmod.USE_FITTED_SWAP = on
    cfgmod.USE_FITTED_CLASS = on
    cfgmod.choose_config.cache_clear()  # both are memoised on their arguments, not on the switches
    cfgmod.choose_tile_classes.cache_clear()


rows = []
for model in moe.MODEL_SHAPES:
    h, i, e, k = moe.MODEL_SHAPES[model]
    torch.manual_seed(0)
    w1, w2 = layer_weights(h, i, e)
    for t in (128, 1024):
        x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        for kind in ("uniform", "skewed"):
            plan = moe.route_plan(routing(kind, t, e, k, seed=t), e)
            info = {"model": model, "T": t, "routing": kind, "max_rows": int(plan.expert_counts.max())}
            outs, calls = {}, {}
            for name, on in (("old", False), ("new", True)):
                mid = torch.empty(t * k, i, device="cuda", dtype=torch.bfloat16)
                out = torch.full((t * k, h), float("nan"), device="cuda", dtype=torch.bfloat16)

                def both(on=on, mid=mid, out=out, plan=plan) -> None:  # type: ignore[no-untyped-def]
                    flags(on)
                    moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid)
                    moe.grouped_gemm(mid, w2, plan, gather=False, out=out, programmatic_launch=True)

                flags(on)
                info[name + "_classes"] = [
                    [c.config.kernel_name for c in cfgmod.choose_tile_classes(t * k, e, nn, kk, "bf16", act, g,
                                                                              num_tokens=t)]
                    for nn, kk, act, g in ((2 * i, h, "silu_and_mul", True), (h, i, None, False))]
                both()
                outs[name], calls[name] = out, both
            torch.cuda.synchronize()
            info["equal"] = bool(torch.equal(outs["old"], outs["new"]))
            info.update(time_interleaved(calls))
            print({kk: v for kk, v in info.items() if not kk.endswith("_classes")}, flush=True)
            rows.append(info)
    w1 = w2 = None
    torch.cuda.empty_cache()
flags(True)
save("dev_fitted_rule_check", rows, {"note": "ms, both GEMMs, heuristic with (new) and without (old) fitted tiles"})
