"""The staged gather's copy overlapped with the GEMM (dev check on the H200, not a test).

The staged gather copies every gathered row into a workspace, meets at a grid barrier, then
runs the GEMM on the workspace by TMA; at Qwen3-30B-A3B the copy was 15-24 % of the gate/up
GEMM. Compiled with ``-DSB_STAGE_OVERLAP=1`` the kernels without store warps instead let
producer warps 1-3 copy the rows in task order while the GEMM runs, each task's rows published
on a counter that the TMA thread waits for (``stage_rows_overlap`` in grouped_gemm.cuh).

This times, in one process, the gate/up GEMM (gathered, SiLU fused) alone: the heuristic's tile
with the staged copy as shipped, with the overlapped copy, and (the bound) the same tile on
pre-grouped rows without gather; at Qwen3-30B T = 16384, where the heuristic's tile has store
warps, the 64-row ping-pong tile and the 128-row cluster tile without store warps as well.
Uniform routing, three interleaved repeats of a median of 10 replays, L2 read-flushed; outputs
compared with the shipped kernel's. Result: benchmarks/results/dev_stage_overlap_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_stage_overlap_check.py
"""
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grouped_gemm import routing
from common import layer_weights, save, time_interleaved

import staticbatch as sb
import staticbatch_moe as moe
import staticbatch_moe.gemm as gemm_mod
from staticbatch_moe._gemm_config import _max_stages, choose_config, kernel_source

_KERNELS: dict[bool, dict] = {False: {}, True: {}}


def use_overlap(on: bool) -> None:
    os.environ["STATICBATCH_NVRTC_OPTIONS"] = "-DSB_STAGE_OVERLAP=1" if on else ""
    gemm_mod._kernels = _KERNELS[on]


PTS = [("Qwen3-30B-A3B", 1024), ("Qwen3-30B-A3B", 4096), ("Qwen3-30B-A3B", 16384), ("Qwen3-235B-A22B", 1024),
       ("Qwen3-235B-A22B", 4096), ("DeepSeek-V3", 1024), ("DeepSeek-V3", 4096), ("GPT-OSS-120B", 1024),
       ("GPT-OSS-120B", 4096), ("Mixtral-8x7B", 1024)]


def tiles_of(model: str, t: int) -> dict:
    """{name: staged config} of the gate/up GEMM at a point: the heuristic's, and at T = 16384
    tiles without store warps."""
    h, i, e, k = moe.MODEL_SHAPES[model]
    heur = choose_config(t * k, e, 2 * i, h, "bf16", "silu_and_mul", True)
    found = {"heur": heur}
    if heur.store_warps:
        found["pp64"] = moe.GemmConfig(block_m=64, block_n=256, stages=_max_stages(64, 256, 6, pingpong=True),
                                       pingpong=True, activation="silu_and_mul", gather=True, gather_mode="staged")
        found["c2"] = dataclasses.replace(heur, store_warps=False, stages=_max_stages(128, 256, 6))
    return found


def main() -> None:
    cfgs = {c for m, t in PTS for c in tiles_of(m, t).values()}
    plain = {dataclasses.replace(c, gather=False, gather_mode="cp_async") for c in cfgs}
    for on in (False, True):
        use_overlap(on)
        sb.compile_many([(kernel_source(c), c.kernel_name) for c in (cfgs | plain)])

    rows = []
    for model, t in PTS:
        h, i, e, k = moe.MODEL_SHAPES[model]
        torch.manual_seed(0)
        w1, _ = layer_weights(h, i, e)
        x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        plan = moe.route_plan(routing("uniform", t, e, k, seed=t), e)
        grouped = x[plan.gather_idx.long().clamp(max=t - 1)].contiguous()
        info = {"model": model, "T": t}
        calls = {}
        for name, cfg in tiles_of(model, t).items():
            info[f"{name}_config"] = cfg.kernel_name
            ref = None
            for variant, on in (("staged", False), ("overlap", True), ("grouped", False)):
                out = torch.full((t * k, i), float("nan"), device="cuda", dtype=torch.bfloat16)
                if variant == "grouped":
                    c2 = dataclasses.replace(cfg, gather=False, gather_mode="cp_async")

                    def fn(c2=c2, out=out) -> None:  # type: ignore[no-untyped-def]
                        use_overlap(False)
                        moe.grouped_gemm(grouped, w1, plan, gather=False, activation="silu_and_mul", out=out, config=c2)
                else:
                    def fn(cfg=cfg, on=on, out=out) -> None:  # type: ignore[no-untyped-def]
                        use_overlap(on)
                        moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=out, config=cfg)

                fn()
                torch.cuda.synchronize()
                if ref is None:
                    ref = out.clone()
                else:
                    info[f"{name}_{variant}_bit_identical"] = bool(torch.equal(out, ref))
                calls[f"{name}_{variant}"] = fn
        info.update(time_interleaved(calls))
        print(info, flush=True)
        rows.append(info)
        w1 = x = grouped = None
        calls = {}
        torch.cuda.empty_cache()
    use_overlap(False)
    barriers = [b for (use, _, _), b in gemm_mod._stream_counters.items() if use == "barrier"]
    print("counters left zero:", all(int(b[0]) == 0 and int(b[2:].abs().sum()) == 0 for b in barriers), flush=True)
    save("dev_stage_overlap_check", rows, {"note": "ms, gate/up GEMM alone, uniform routing, three interleaved repeats"})


if __name__ == "__main__":
    main()
