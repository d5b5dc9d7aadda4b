"""A fourth tile class under the fitted 160-token class (dev check on the H200, not a test).

With the fitted 160-token class (USE_FITTED_WIDE) DeepSeek-V3 and GPT-OSS-120B at T = 4096 run
6-12 % faster under uniform routing but only 1-3 % faster skewed (bench_grouped_gemm at
``0ffb426``), so the skewed / uniform efficiency fell to 0.81-0.84. Under the skewed routing 185
of DeepSeek-V3's 256 experts have at most 64 rows; the fitted 160-token tile streams their weights
with 5 ring stages. This times both GEMMs (as bench_grouped_gemm) with ``FITTED_WIDE_LOW`` off, a
class of fitted 128-token tiles (6 stages) for experts of at most 128 rows, and a class of plain
swap tiles of 48 or 32 tokens (12 stages, cp.async gather) for experts of at most that many rows.
Five interleaved repeats of a median of 10 replays, L2 read-flushed; outputs against the float32
reference and the shipped classes'. Result: benchmarks/results/dev_fitted_wide_low_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_fitted_wide_low_check.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grouped_gemm import routing
from common import layer_weights, save, time_interleaved

import staticbatch as sb
import staticbatch_moe as moe
import staticbatch_moe._gemm_config as cfgmod
from staticbatch_moe._gemm_config import choose_tile_classes, kernel_source

VARIANTS = {"shipped": None, "f128_le128": ("fitted128", 128), "swap_le48": ("swap", 48), "swap_le32": ("swap", 32)}


def use(name: str) -> None:
    cfgmod.FITTED_WIDE_LOW = VARIANTS[name]
    cfgmod.choose_config.cache_clear()
    cfgmod.choose_tile_classes.cache_clear()


PTS = [(m, 4096, r) for m in ("DeepSeek-V3", "GPT-OSS-120B") for r in ("uniform", "skewed")]


def classes_of(model: str, t: int) -> dict:
    h, i, e, k = moe.MODEL_SHAPES[model]
    return {"up": choose_tile_classes(t * k, e, 2 * i, h, "bf16", "silu_and_mul", True, num_tokens=t),
            "down": choose_tile_classes(t * k, e, h, i, "bf16", None, False, num_tokens=t)}


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.float() - ref.float()).norm() / ref.float().norm())


def main() -> None:
    cfgs = set()
    for name in VARIANTS:
        use(name)
        for model, t, _ in PTS:
            cfgs |= {c.config for g in classes_of(model, t).values() for c in g}
    sb.compile_many([(kernel_source(c), c.kernel_name) for c in cfgs])

    rows = []
    for model, t, rt in PTS:
        h, i, e, k = moe.MODEL_SHAPES[model]
        torch.manual_seed(0)
        w1, w2 = layer_weights(h, i, e)
        x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        plan = moe.route_plan(routing(rt, t, e, k, seed=t), e)
        info = {"model": model, "T": t, "routing": rt}
        mid_ref = moe.grouped_gemm_reference(x, w1, plan, activation="silu_and_mul").to(torch.bfloat16)
        ref = moe.grouped_gemm_reference(mid_ref, w2, plan, gather=False)
        calls = {}
        first = None
        for name in VARIANTS:
            use(name)
            info[f"{name}_classes"] = {g: [(c.config.kernel_name, c.min_rows, c.max_rows) for c in cl]
                                       for g, cl in classes_of(model, t).items()}
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
                info[f"{name}_bit_identical_to_shipped"] = bool(torch.equal(out, first))
            calls[name] = fn
        info.update(time_interleaved(calls, repeats=5))
        use("shipped")
        print({kk: v for kk, v in info.items() if not kk.endswith("_classes")}, flush=True)
        rows.append(info)
        w1 = w2 = x = mid_ref = ref = first = None
        calls = {}
        torch.cuda.empty_cache()
    save("dev_fitted_wide_low_check", rows, {"note": "ms, both GEMMs as bench_grouped_gemm times them, five "
                                                     "interleaved repeats"})


if __name__ == "__main__":
    main()
