"""Wide fitted swap tiles (144-160 tokens) for experts of about 128 rows, and which experts get them
(dev check on the H200, not a test).

dev_fitted192_check.json (``cc7d7cc``): at equal work (exact routing, 128 rows per expert) the
fitted tile slows with its token count (gate/up 128 tokens 4.44 ms, 192 4.96, 256 5.54; also with
the 256-token tile's token stage capped at 128 rows, 5.02). dev_fitted_wide_check.json
(``d0f51b2``, both GEMMs): fitted tiles of 144-160 tokens for every expert of up to 320 rows (the
hot class above) beat the heuristic's 64-row ping-pong tiles under uniform routing by 4-6 %
(DeepSeek-V3 T = 4096 7.49 -> 7.03 ms, GPT-OSS-120B 2.11 -> 2.00-2.04, Qwen3-235B T = 2048 1.66 ->
1.58) but were 1-3 % slower under skewed routing, which would break the skew floor.

This times both GEMMs of a layer as bench_grouped_gemm does (gate/up, then down as a programmatic
dependent where the rule says so) with ``USE_FITTED_WIDE`` off (the heuristic before it, "heur") and on,
with three splits of the experts (``FITTED_WIDE_SPLIT``): fitted tiles up to 320 rows and the hot
class above ("A"); fitted up to F rows, 64-row ping-pong tiles up to 320, hot above ("B"); fitted
up to F, hot above ("C"); F = 160 and 144. DeepSeek-V3 and GPT-OSS-120B at T = 4096 and
Qwen3-235B-A22B at T = 2048, uniform and skewed routing. Five interleaved repeats of a median of
10 replays, L2 read-flushed; every variant's output against the float32 reference and the
heuristic's. Result: benchmarks/results/dev_fitted_wide_classes_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_fitted_wide_classes_check.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import layer_classes, layer_point, save, time_interleaved

import staticbatch as sb
import staticbatch_moe as moe
import staticbatch_moe._gemm_config as cfgmod
from staticbatch_moe._gemm_config import kernel_source

VARIANTS = {"heur": (False, 160, (160, 320)), "A160": (True, 160, (320, 320)), "B160": (True, 160, (160, 320)),
            "C160": (True, 160, (160, 160)), "B144": (True, 144, (144, 320)), "C144": (True, 144, (144, 144))}


def use(name: str) -> None:
    on, size, split = VARIANTS[name]
    cfgmod.USE_FITTED_WIDE = on
    cfgmod.FITTED_WIDE = size
    cfgmod.FITTED_WIDE_SPLIT = split
    cfgmod.choose_config.cache_clear()
    cfgmod.choose_tile_classes.cache_clear()


PTS = [(m, t, r) for m, t in (("DeepSeek-V3", 4096), ("GPT-OSS-120B", 4096), ("Qwen3-235B-A22B", 2048))
       for r in ("uniform", "skewed")]


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.float() - ref.float()).norm() / ref.float().norm())


def main() -> None:
    cfgs = set()
    for name in VARIANTS:
        use(name)
        for model, t, _ in PTS:
            cfgs |= {c.config for g in layer_classes(model, t).values() for c in g}
    sb.compile_many([(kernel_source(c), c.kernel_name) for c in cfgs])

    rows = []
    for model, t, rt in PTS:
        h, i, e, k = moe.MODEL_SHAPES[model]
        w1, w2, x, plan = layer_point(model, t, rt)
        counts = plan.expert_counts.cpu()
        nz = counts[counts > 0]
        info = {"model": model, "T": t, "routing": rt, "rows_min_max": [int(nz.min()), int(nz.max())]}
        mid_ref = moe.grouped_gemm_reference(x, w1, plan, activation="silu_and_mul").to(torch.bfloat16)
        ref = moe.grouped_gemm_reference(mid_ref, w2, plan, gather=False)
        calls = {}
        first = None
        for name in VARIANTS:
            use(name)
            info[f"{name}_classes"] = {g: [(c.config.kernel_name, c.min_rows, c.max_rows) for c in cl]
                                       for g, cl in layer_classes(model, t).items()}
            mid = torch.full((t * k, i), float("nan"), device="cuda", dtype=torch.bfloat16)
            out = torch.full((t * k, h), float("nan"), device="cuda", dtype=torch.bfloat16)

            def fn(name=name, mid=mid, out=out) -> None:  # type: ignore[no-untyped-def]
                use(name)
                moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid)
                moe.grouped_gemm(mid, w2, plan, gather=False, out=out, programmatic_launch=True)

            fn()
            torch.cuda.synchronize()
            info[f"{name}_rel_err"] = rel_err(out, ref)
            if first is None:
                first = out.clone()
            else:
                info[f"{name}_bit_identical_to_heur"] = bool(torch.equal(out, first))
            calls[name] = fn
        info.update(time_interleaved(calls, repeats=5))
        use("heur")
        print({kk: v for kk, v in info.items() if not kk.endswith("_classes")}, flush=True)
        rows.append(info)
        w1 = w2 = x = mid_ref = ref = first = None
        calls = {}
        torch.cuda.empty_cache()
    save("dev_fitted_wide_classes_check", rows, {"note": "ms, both GEMMs as bench_grouped_gemm times them, five "
                                                 "interleaved repeats"})


if __name__ == "__main__":
    main()
