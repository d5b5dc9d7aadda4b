"""The down weights started into L2 by the gate/up GEMM's idle blocks at decode (dev check on
the H200, not a test).

At T = 1 Qwen3-30B-A3B's gate/up GEMM has 96 swap-mode tiles for 132 SMs. With
``grouped_gemm(prefetch_weight=w2)`` its 36 blocks without a tile start the down weights of the
experts with rows into L2 (``prefetch_next_weights`` in grouped_gemm.cuh, up to
``PREFETCH_BUDGET_BYTES``) and exit; the down GEMM, a programmatic dependent, then reads them
from L2. Also tried here: swap-mode weight loads with an evict-first L2 policy (the macro
``SB_SWAP_WEIGHT_EVICT_FIRST``, a separate compile), so that the gate/up GEMM's stream does not
push the prefetched lines out.

Both GEMMs of a layer as the benchmark times them (gate/up gathered with SiLU fused, down a
programmatic dependent), heuristic tiles, uniform routing, three interleaved repeats of a median
of 10 replays, L2 read-flushed; outputs compared with the variant without either. Result:
benchmarks/results/dev_prefetch_weight_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_prefetch_weight_check.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grouped_gemm import routing
from common import layer_weights, save, time_interleaved

import staticbatch as sb
import staticbatch_moe as moe
import staticbatch_moe.gemm as gemm_mod
from staticbatch_moe._gemm_config import choose_tile_classes, kernel_source

_KERNELS: dict[bool, dict] = {True: {}, False: {}}
_OPT = "-DSB_SWAP_WEIGHT_EVICT_FIRST"


def use_kernels(evict_first: bool) -> None:
    """Select the kernel variant for the next compile / launch."""
    os.environ["STATICBATCH_NVRTC_OPTIONS"] = _OPT if evict_first else ""
    gemm_mod._kernels = _KERNELS[evict_first]


PTS = [("Qwen3-30B-A3B", 1), ("Qwen3-30B-A3B", 2), ("Qwen3-30B-A3B", 16), ("Qwen3-30B-A3B", 128),
       ("GPT-OSS-120B", 1), ("GPT-OSS-120B", 16), ("Qwen3-235B-A22B", 1), ("Qwen3-235B-A22B", 16),
       ("Mixtral-8x7B", 1), ("DeepSeek-V3", 1)]
# name: (prefetch, budget bytes, evict-first kernels)
VARIANTS = {"off": (False, 0, False), "prefetch": (True, 32 << 20, False), "prefetch48": (True, 48 << 20, False),
            "prefetch_ef": (True, 32 << 20, True), "ef": (False, 0, True)}


def main() -> None:
    cfgs = set()
    for model, t in PTS:
        h, i, e, k = moe.MODEL_SHAPES[model]
        for c in choose_tile_classes(t * k, e, 2 * i, h, "bf16", "silu_and_mul", True, num_tokens=t):
            cfgs.add(c.config)
        for c in choose_tile_classes(t * k, e, h, i, "bf16", None, False, num_tokens=t):
            cfgs.add(c.config)
    for ef in (False, True):
        use_kernels(ef)
        sb.compile_many([(kernel_source(c), c.kernel_name) for c in cfgs])

    rows = []
    for model, t in PTS:
        h, i, e, k = moe.MODEL_SHAPES[model]
        torch.manual_seed(0)
        w1, w2 = layer_weights(h, i, e)
        x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        plan = moe.route_plan(routing("uniform", t, e, k, seed=t), e)
        m = t * k
        mid = torch.empty(m, i, device="cuda", dtype=torch.bfloat16)
        info = {"model": model, "T": t, "active_experts": int((plan.expert_counts > 0).sum()),
                "down_weight_mb": round(int((plan.expert_counts > 0).sum()) * h * i * 2 / 2**20, 1)}
        calls = {}
        ref = None
        for name, (pf, budget, ef) in VARIANTS.items():
            out = torch.full((m, h), float("nan"), device="cuda", dtype=torch.bfloat16)

            def fn(pf=pf, budget=budget, ef=ef, out=out) -> None:  # type: ignore[no-untyped-def]
                use_kernels(ef)
                gemm_mod.PREFETCH_BUDGET_BYTES = budget
                moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid,
                                 prefetch_weight=w2 if pf else None)
                moe.grouped_gemm(mid, w2, plan, gather=False, out=out, programmatic_launch=True)

            fn()
            torch.cuda.synchronize()
            if ref is None:
                ref = out.clone()
                exact = moe.grouped_gemm_reference(moe.grouped_gemm_reference(x, w1, plan, activation="silu_and_mul"),
                                                   w2, plan, gather=False)
                info["rel_err"] = float((out.float() - exact.float()).norm() / exact.float().norm())
            else:
                info[f"{name}_bit_identical"] = bool(torch.equal(out, ref))
            calls[name] = fn
        info.update(time_interleaved(calls))
        print(info, flush=True)
        rows.append(info)
        w1 = w2 = x = mid = None
        calls = {}
        torch.cuda.empty_cache()
    use_kernels(False)
    gemm_mod.PREFETCH_BUDGET_BYTES = 32 << 20
    save("dev_prefetch_weight_check", rows, {"note": "ms, both GEMMs (down programmatic), uniform routing, "
                                                     "three interleaved repeats"})


if __name__ == "__main__":
    main()
