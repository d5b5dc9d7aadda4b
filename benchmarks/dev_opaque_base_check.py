"""The consumers' ring addresses from an opaque shared-memory base (dev check on the H200, not a
test).

In some kernels ptxas re-derived the block's shared-memory base in every K step of the consumer
main loop (S2UR SR_CgaCtaId, then the 1024-byte alignment and the stage offsets): the decode
swap-mode kernels and the 256-token fitted tiles, whose inner loops ran 50-70 instructions where
the others run 42-47. Compiled with ``-DSB_OPAQUE_BASE=1`` the consumers compute the base once,
behind an empty asm that the compiler cannot see through, and derive each stage's addresses and
full barrier from it.

This times, in one process, both GEMMs of a layer as the benchmark does (heuristic tiles, uniform
routing, down a programmatic dependent) at T = 1, 16, 128, 1024, 4096 for the five models and
T = 16384 for Qwen3-30B and Mixtral, plus each GEMM alone with the fitted 128- and 256-token
tiles on an exact routing (DeepSeek-V3, GPT-OSS-120B at T = 4096). Three interleaved repeats of a
median of 10 replays, L2 read-flushed; outputs compared with the shipped kernels'. Result:
benchmarks/results/dev_opaque_base_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_opaque_base_check.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grouped_gemm import routing
from common import exact_routing, layer_weights, save, time_interleaved

import staticbatch as sb
import staticbatch_moe as moe
import staticbatch_moe.gemm as gemm_mod
from staticbatch_moe._gemm_config import choose_tile_classes, fitted_config, kernel_source

_KERNELS: dict[int, dict] = {0: {}, 1: {}}


def use(v: int) -> None:
    os.environ["STATICBATCH_NVRTC_OPTIONS"] = "-DSB_OPAQUE_BASE=1" if v else ""
    gemm_mod._kernels = _KERNELS[v]


PTS = [(m, t) for t in (1, 16, 128, 1024, 4096) for m in moe.MODEL_SHAPES]
PTS += [("Qwen3-30B-A3B", 16384), ("Mixtral-8x7B", 16384)]
FITTED = [("DeepSeek-V3", 4096), ("GPT-OSS-120B", 4096)]


def main() -> None:
    cfgs = set()
    for model, t in PTS:
        h, i, e, k = moe.MODEL_SHAPES[model]
        cfgs |= {c.config for c in choose_tile_classes(t * k, e, 2 * i, h, "bf16", "silu_and_mul", True, num_tokens=t)}
        cfgs |= {c.config for c in choose_tile_classes(t * k, e, h, i, "bf16", None, False, num_tokens=t)}
    for bm in (128, 256):
        cfgs |= {fitted_config(bm, "silu_and_mul", "bf16", True), fitted_config(bm, None, "bf16", False)}
    for v in (0, 1):
        use(v)
        sb.compile_many([(kernel_source(c), c.kernel_name) for c in cfgs])

    rows = []
    for model, t in PTS + FITTED:
        fitted = (model, t) in FITTED and len(rows) >= len(PTS)
        h, i, e, k = moe.MODEL_SHAPES[model]
        torch.manual_seed(0)
        w1, w2 = layer_weights(h, i, e)
        x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        mid = torch.randn(t * k, i, device="cuda", dtype=torch.bfloat16)
        plan = moe.route_plan(exact_routing(t, e, k) if fitted else routing("uniform", t, e, k, seed=t), e)
        info = {"model": model, "T": t, "what": "fitted tiles, each GEMM alone, exact routing" if fitted
                else "heuristic, both GEMMs, uniform routing"}
        calls = {}
        variants = ([(f"{g}_f{bm}", g, bm) for g in ("up", "down") for bm in (128, 256)] if fitted
                    else [("both", None, None)])
        for name, gemm, bm in variants:
            ref = None
            for v in (0, 1):
                out = torch.full((t * k, i if gemm == "up" else h), float("nan"), device="cuda", dtype=torch.bfloat16)
                if gemm is None:
                    def fn(v=v, out=out) -> None:  # type: ignore[no-untyped-def]
                        use(v)
                        moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid)
                        moe.grouped_gemm(mid, w2, plan, gather=False, out=out, programmatic_launch=True)
                else:
                    cfg = fitted_config(bm, "silu_and_mul" if gemm == "up" else None, "bf16", gemm == "up")

                    def fn(v=v, out=out, cfg=cfg, gemm=gemm) -> None:  # type: ignore[no-untyped-def]
                        use(v)
                        if gemm == "up":
                            moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=out, config=cfg)
                        else:
                            moe.grouped_gemm(mid, w2, plan, gather=False, out=out, config=cfg)
                fn()
                torch.cuda.synchronize()
                if ref is None:
                    ref = out.clone()
                else:
                    info[f"{name}_bit_identical"] = bool(torch.equal(out, ref))
                calls[f"{name}_{'opaque' if v else 'shipped'}"] = fn
        info.update(time_interleaved(calls))
        print(info, flush=True)
        rows.append(info)
        w1 = w2 = x = mid = None
        calls = {}
        torch.cuda.empty_cache()
    use(0)
    save("dev_opaque_base_check", rows, {"note": "ms, three interleaved repeats; shipped vs -DSB_OPAQUE_BASE=1"})


if __name__ == "__main__":
    main()
