"""Cooperative 128-row tiles that skip a consumer group whose 64 rows lie past the expert's end
(dev check on the H200, not a test).

A 128-row normal-mode tile is two consumer warp groups of 64 token rows. An expert's last
m-block often holds 64 rows or fewer; before, its second group still ran a whole wgmma chain on
rows past the expert's end. The kernel now skips that group's wgmmas and epilogue
(``GemmShape::kDeadSkip``; the macro ``SB_DEAD_SKIP=0`` restores the old kernel for this check).

This times, in one process, both kernels of the heuristic's 128-row tiles (T = 16384 for the
five models, Mixtral-8x7B T = 4096), and at the points where the heuristic takes 64-row
ping-pong tiles (T = 4096, Mixtral-8x7B T = 1024) those against the 128-row tiles of the same
width with and without the skip. Both GEMMs of a layer on the benchmark's uniform routing, each
alone: gate/up gathered with SiLU fused, down on random grouped rows. Three interleaved repeats
of a median of 10 replays, L2 read-flushed; outputs compared with the heuristic's. Result:
benchmarks/results/dev_dead_skip_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_dead_skip_check.py [MODEL_PREFIX]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import layer_point, save, time_interleaved

import staticbatch as sb
import staticbatch_moe as moe
import staticbatch_moe.gemm as gemm_mod
from staticbatch_moe._gemm_config import _prefill_config, choose_config, kernel_source

_KERNELS = {True: {}, False: {}}


def use_skip(on: bool) -> None:
    """Select the kernel variant for the next compile / launch."""
    os.environ["STATICBATCH_NVRTC_OPTIONS"] = "" if on else "-DSB_DEAD_SKIP=0"
    gemm_mod._kernels = _KERNELS[on]


pts = [("DeepSeek-V3", 16384), ("GPT-OSS-120B", 16384), ("Qwen3-235B-A22B", 16384), ("Qwen3-30B-A3B", 16384),
       ("Mixtral-8x7B", 16384), ("Mixtral-8x7B", 4096),
       ("DeepSeek-V3", 4096), ("GPT-OSS-120B", 4096), ("Qwen3-235B-A22B", 4096), ("Qwen3-30B-A3B", 4096),
       ("Mixtral-8x7B", 1024)]
if len(sys.argv) > 1:
    pts = [p for p in pts if p[0].startswith(sys.argv[1])]



def variants_of(model: str, t: int, gemm: str) -> tuple[tuple, dict]:
    """(choose_config's arguments, {name: (config, skip)}) of one GEMM of a point."""
    h, i, e, k = moe.MODEL_SHAPES[model]
    m = t * k
    args = (m, e, 2 * i, h, "bf16", "silu_and_mul", True) if gemm == "up" else (m, e, h, i, "bf16", None, False)
    heur = choose_config(*args)
    if heur.block_m == 128:
        return args, {"heuristic": (heur, True), "heuristic_noskip": (heur, False)}
    tall = _prefill_config(128, heur.block_n, args[5], "bf16", args[6], args[3])
    return args, {"heuristic": (heur, True), "bm128": (tall, True), "bm128_noskip": (tall, False)}


def main() -> None:
    # Compile every kernel first, in parallel (the disk cache serves the launches below).
    for skip in (True, False):
        use_skip(skip)
        cfgs = {v[0] for model, t in pts for g in ("up", "down") for v in variants_of(model, t, g)[1].values()
                if v[1] == skip}
        sb.compile_many([(kernel_source(c), c.kernel_name) for c in cfgs])

    rows = []
    for model, t in pts:
        h, i, e, k = moe.MODEL_SHAPES[model]
        w1, w2, x, plan = layer_point(model, t, "uniform")
        m = t * k
        mid = torch.randn(m, i, device="cuda", dtype=torch.bfloat16)
        counts = plan.expert_counts.tolist()
        info = {"model": model, "T": t, "rows_min_max": (min(counts), max(counts))}
        calls = {}
        for gemm in ("up", "down"):
            args, variants = variants_of(model, t, gemm)
            ref = None
            for name, (cfg, skip) in variants.items():
                info[f"{gemm}_{name}_config"] = cfg.kernel_name
                out = torch.full((m, i if gemm == "up" else h), float("nan"), device="cuda", dtype=torch.bfloat16)

                def fn(cfg=cfg, skip=skip, out=out, gemm=gemm) -> None:  # type: ignore[no-untyped-def]
                    use_skip(skip)
                    if gemm == "up":
                        moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=out, config=cfg)
                    else:
                        moe.grouped_gemm(mid, w2, plan, gather=False, out=out, config=cfg)

                fn()
                torch.cuda.synchronize()
                if ref is None:
                    ref = out.clone()
                else:
                    info[f"{gemm}_{name}_bit_identical"] = bool(torch.equal(out, ref))
                    info[f"{gemm}_{name}_rel_diff"] = float((out.float() - ref.float()).norm() / ref.float().norm())
                calls[f"{gemm}_{name}"] = fn
        info.update(time_interleaved(calls))
        print(info, flush=True)
        rows.append(info)
        w1 = w2 = x = mid = None
        calls = {}
        torch.cuda.empty_cache()
    use_skip(True)
    save("dev_dead_skip_check", rows, {"note": "ms, uniform routing, each GEMM alone, three interleaved repeats"})


if __name__ == "__main__":
    main()
