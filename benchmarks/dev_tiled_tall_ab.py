"""Both GEMMs of a layer on tiled weights with the heuristic's classes with and without
``USE_TILED_TALL`` (dev check on the H200, not a test).

``USE_TILED_TALL`` gives every expert 128 x 192 ping-pong clusters where tiled weights would get
64-row ping-pong tiles for 192-320 rows per expert on average (the per-GEMM evidence is
dev_tiled_rule_check.json). Here the two GEMMs run as bench_grouped_gemm times them (gate/up
gathered with SiLU fused, then down as a programmatic dependent, the launches as the heuristic
decides them), on tiled weights with the rule off and on, and on plain weights; five interleaved
repeats of a median of 10 replays, L2 read-flushed, outputs compared bit for bit.

Run::

    PYTHONPATH=. python benchmarks/dev_tiled_tall_ab.py [--points Model:T:routing,...]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import hopper_points, layer_point, save, tiled_layer_weights, time_interleaved

import staticbatch_moe as moe
from staticbatch_moe import _gemm_config as cfgmod

POINTS = [("Qwen3-30B-A3B", 4096, "uniform"), ("Qwen3-30B-A3B", 4096, "skewed"), ("Qwen3-235B-A22B", 4096, "uniform"),
          ("Qwen3-235B-A22B", 4096, "skewed"), ("Qwen3-30B-A3B", 3072, "uniform"),
          ("Qwen3-235B-A22B", 3072, "uniform"), ("GPT-OSS-120B", 6144, "uniform"), ("DeepSeek-V3", 6144, "uniform")]


def main() -> int:
    points = hopper_points("dev_tiled_tall_ab", POINTS)
    if points is None:
        return 0
    rows = []
    for model, t, kind in points:
        w1p, w2, x, plan = layer_point(model, t, kind)
        tiled = tiled_layer_weights(w1p, w2)
        h, i, _, _ = moe.MODEL_SHAPES[model]
        valid = int(plan.expert_starts[-1])
        calls, outs, kernels = {}, {}, {}
        for name, (a1, a2), rule in (("plain", (w1p, w2), True), ("tiled_off", tiled, False),
                                     ("tiled_on", tiled, True)):
            mid = torch.empty(plan.num_rows, i, device="cuda", dtype=torch.bfloat16)
            y = torch.full((plan.num_rows, h), float("nan"), device="cuda", dtype=torch.bfloat16)

            def fn(a1=a1, a2=a2, rule=rule, mid=mid, y=y, x=x, plan=plan) -> None:  # type: ignore[no-untyped-def]
                cfgmod.USE_TILED_TALL = rule
                moe.choose_tile_classes.cache_clear()
                moe.grouped_gemm(x, a1, plan, activation="silu_and_mul", out=mid)
                moe.grouped_gemm(mid, a2, plan, gather=False, out=y, programmatic_launch=True)

            fn()
            torch.cuda.synchronize()
            calls[name], outs[name] = fn, y
            tw = name != "plain"
            kernels[name] = [c.config.kernel_name for c in
                             moe.choose_tile_classes(plan.num_rows, plan.num_experts, 2 * i, h,
                                                     "bf16", "silu_and_mul", True, num_tokens=t, tiled_w=tw)
                             + moe.choose_tile_classes(plan.num_rows, plan.num_experts, h, i, "bf16", None, False,
                                                       num_tokens=t, tiled_w=tw)]
        cfgmod.USE_TILED_TALL = True
        moe.choose_tile_classes.cache_clear()
        ref = outs["plain"][:valid]
        same = {n: bool(torch.equal(o[:valid], ref)) for n, o in outs.items() if n != "plain"}
        ms = time_interleaved(calls, repeats=5, reps=10)
        med = {n: sorted(v)[2] for n, v in ms.items()}
        rows.append({"model": model, "T": t, "routing": kind, "bit_identical": same,
                     "nan_free": not bool(ref.isnan().any()), "ms": ms, "median_ms": med,
                     "on_over_off": round(med["tiled_on"] / med["tiled_off"], 4),
                     "on_over_plain": round(med["tiled_on"] / med["plain"], 4), "kernels": kernels})
        print(f"{model} T={t} {kind}: plain {med['plain']:.4f} tiled off {med['tiled_off']:.4f} on "
              f"{med['tiled_on']:.4f} ms (on/off {rows[-1]['on_over_off']:.3f}) same {same}", flush=True)
        del w1p, w2, x, plan, tiled, calls, outs
        torch.cuda.empty_cache()
    save("dev_tiled_tall_ab", rows, {"note": "both GEMMs as bench_grouped_gemm calls them; tiled weights with "
                                     "USE_TILED_TALL off and on, plain weights; ms, five interleaved repeats"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
