"""Weight tiles prefetched into L2 past the ring (dev check on the H200, not a test).

The ring holds kStages weight tiles per SM, and the 256-token fitted swap tile (4 stages) ran its
DRAM at 78 % where the 128-token one (6 stages) reached 87 % (dev_fitted_ncu_stalls.json). Compiled
with ``-DSB_W_PREFETCH=d`` the TMA thread also issues cp.async.bulk.prefetch.tensor for the weight
tiles of the d K steps past the ring (within a tile; not in clusters), so that more weight bytes
are in flight than shared memory holds.

This times both GEMMs of a layer as the benchmark does (gate/up gathered with SiLU fused, down a
programmatic dependent), heuristic tiles, uniform routing, for d = 0 (as shipped), 4, 8, 16; and
the fitted 256-token tiles at T = 4096 for DeepSeek-V3 and GPT-OSS-120B. Three interleaved
repeats of a median of 10 replays, L2 read-flushed; outputs compared with d = 0. Result:
benchmarks/results/dev_w_prefetch_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_w_prefetch_check.py
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
from staticbatch_moe._gemm_config import choose_tile_classes, fitted_config, kernel_source

DISTANCES = (0, 4, 8, 16)
_KERNELS: dict[int, dict] = {d: {} for d in DISTANCES}


def use(d: int) -> None:
    os.environ["STATICBATCH_NVRTC_OPTIONS"] = f"-DSB_W_PREFETCH={d}" if d else ""
    gemm_mod._kernels = _KERNELS[d]


PTS = [(m, t, False) for t in (1, 16, 128, 1024, 4096) for m in moe.MODEL_SHAPES]
PTS += [("DeepSeek-V3", 4096, True), ("GPT-OSS-120B", 4096, True)]


def configs_of(model: str, t: int, fitted: bool) -> tuple:
    """(gate/up config, down config): None for the heuristic's, or the fitted 256-token tiles."""
    if not fitted:
        return None, None
    return fitted_config(256, "silu_and_mul", "bf16", True), fitted_config(256, None, "bf16", False)


def main() -> None:
    cfgs = set()
    for model, t, fitted in PTS:
        h, i, e, k = moe.MODEL_SHAPES[model]
        up, down = configs_of(model, t, fitted)
        if fitted:
            cfgs |= {up, down}
        else:
            cfgs |= {c.config for c in choose_tile_classes(t * k, e, 2 * i, h, "bf16", "silu_and_mul", True,
                                                           num_tokens=t)}
            cfgs |= {c.config for c in choose_tile_classes(t * k, e, h, i, "bf16", None, False, num_tokens=t)}
    for d in DISTANCES:
        use(d)
        sb.compile_many([(kernel_source(c), c.kernel_name) for c in cfgs])

    rows = []
    for model, t, fitted in PTS:
        h, i, e, k = moe.MODEL_SHAPES[model]
        torch.manual_seed(0)
        w1, w2 = layer_weights(h, i, e)
        x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        plan = moe.route_plan(routing("uniform", t, e, k, seed=t), e)
        mid = torch.empty(t * k, i, device="cuda", dtype=torch.bfloat16)
        up, down = configs_of(model, t, fitted)
        info = {"model": model, "T": t, "tiles": "fitted256" if fitted else "heuristic"}
        calls = {}
        ref = None
        for d in DISTANCES:
            out = torch.full((t * k, h), float("nan"), device="cuda", dtype=torch.bfloat16)

            def fn(d=d, out=out) -> None:  # type: ignore[no-untyped-def]
                use(d)
                moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid, config=up)
                moe.grouped_gemm(mid, w2, plan, gather=False, out=out, config=down, programmatic_launch=True)

            fn()
            torch.cuda.synchronize()
            if ref is None:
                ref = out.clone()
            else:
                info[f"d{d}_bit_identical"] = bool(torch.equal(out, ref))
            calls[f"d{d}"] = fn
        info.update(time_interleaved(calls))
        print(info, flush=True)
        rows.append(info)
        w1 = w2 = x = mid = None
        calls = {}
        torch.cuda.empty_cache()
    use(0)
    save("dev_w_prefetch_check", rows, {"note": "ms, both GEMMs (down programmatic), uniform routing, "
                                                "three interleaved repeats; dN: N weight K steps prefetched "
                                                "into L2 past the ring"})


if __name__ == "__main__":
    main()
