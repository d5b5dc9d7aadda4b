"""Wide fitted swap tiles (144-176 tokens) for experts of about 128 rows (dev check on the H200, not a
test).

dev_fitted192_check.json found the fitted tile's speed falling with its token count at equal work
(exact routing, 128 rows per expert, gate/up: 128 tokens 4.44 ms, 192 4.96, 256 5.54), also with the
256-token tile's token stage capped at 128 rows (5.02), but a 160-token tile (5 stages) beating the
heuristic's 64-row ping-pong tiles under uniform routing (DeepSeek-V3 T = 4096 gate/up 4.75 against
5.16 ms, down 2.34 against 2.59; GPT-OSS-120B down 0.64 against 0.75), where every expert (92-165
rows) is one m-block. That run's 160-token outputs were wrong (the swap epilogue stored whole
64-token chunks only, so tokens 128-159 were never written); the epilogue now stores the partial
last chunk.

This times both GEMMs of a layer as bench_grouped_gemm does (gate/up, then down as a programmatic
dependent where the rule says so), the heuristic with and without ``USE_FITTED_WIDE``, at the
points whose busy expert is estimated at (96, 176] rows: DeepSeek-V3 and GPT-OSS-120B at T = 4096,
the Qwen3 models at T = 2048, Mixtral-8x7B at T = 512, uniform and skewed routing. Variants: the
shipped heuristic; wide fitted tiles of 144, 160, 176 tokens with the hot class of 128-row tiles
for experts of more than 320 rows; 160 tokens without it. Three interleaved repeats of a median of
10 replays, L2 read-flushed; every variant's output against the float32 reference and the
heuristic's. Result: benchmarks/results/dev_fitted_wide_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_fitted_wide_check.py
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

VARIANTS = {"heur": (False, 160, True), "w144": (True, 144, True), "w160": (True, 160, True),
            "w176": (True, 176, True), "w160_nohot": (True, 160, False)}


def use(name: str) -> None:
    on, size, hot = VARIANTS[name]
    cfgmod.USE_FITTED_WIDE = on
    cfgmod.FITTED_WIDE = size
    cfgmod.FITTED_WIDE_MAX_ROWS = 176
    cfgmod.USE_FITTED_WIDE_HOT_CLASS = hot
    cfgmod.choose_config.cache_clear()
    cfgmod.choose_tile_classes.cache_clear()


PTS = [(m, 4096, r) for m in ("DeepSeek-V3", "GPT-OSS-120B") for r in ("uniform", "skewed")]
PTS += [(m, 2048, r) for m in ("Qwen3-235B-A22B", "Qwen3-30B-A3B") for r in ("uniform", "skewed")]
PTS += [("Mixtral-8x7B", 512, r) for r in ("uniform", "skewed")]


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
                info[f"{name}_bit_identical_to_heur"] = bool(torch.equal(out, first))
            calls[name] = fn
        info.update(time_interleaved(calls))
        use("heur")
        print({kk: v for kk, v in info.items() if not kk.endswith("_classes")}, flush=True)
        rows.append(info)
        w1 = w2 = x = mid_ref = ref = first = None
        calls = {}
        torch.cuda.empty_cache()
    save("dev_fitted_wide_check", rows, {"note": "ms, both GEMMs as bench_grouped_gemm times them, three "
                                                 "interleaved repeats"})


if __name__ == "__main__":
    main()
