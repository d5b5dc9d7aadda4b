"""Clock and power of the compute-bound points under the H200's power cap, against cuBLAS (dev check
on the H200, not a test).

dev_dense_parity_check.py found our kernel at least as fast as cuBLAS per clock cycle on problems
without irregularity (ncu, clocks locked), but slower under the power cap. This times each GEMM
of four compute-bound points of bench_grouped_gemm (heuristic tiles, and a 128 x 192 ping-pong
tile in a 2-CTA cluster where it applies) and cuBLAS bf16 8192^3, and samples the SM clock and
board power with nvidia-smi while each runs back to back for 1.5 s. ``--ncu`` runs each call
twice with no flush, for ncu with locked clocks (their cycle counts at one clock).

Result: benchmarks/results/dev_power_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_power_check.py [--ncu]
"""
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import LayerGemms, save, time_interleaved
from dev_dense_parity_check import sample_clock

from staticbatch_moe._gemm_config import GemmConfig

POINTS = (("Mixtral-8x7B", 16384), ("DeepSeek-V3", 16384), ("GPT-OSS-120B", 16384), ("Qwen3-30B-A3B", 4096))


def pingpong_c2(gemm: str) -> GemmConfig:
    cfg = GemmConfig(block_m=128, block_n=192, stages=4, pingpong=True, cluster=2)
    if gemm == "up":
        cfg = dataclasses.replace(cfg, activation="silu_and_mul", gather=True, gather_mode="staged")
    return cfg


def main() -> None:
    ncu = "--ncu" in sys.argv
    rows = []
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    calls = {"cublas_8192": lambda: torch.mm(a, b)}
    if ncu:
        calls["cublas_8192"]()
        calls["cublas_8192"]()
    else:
        info = {"point": "cublas_8192", "ms": time_interleaved(calls), "clock": sample_clock(calls["cublas_8192"])}
        print(info, flush=True)
        rows.append(info)
    for model, t in POINTS:
        torch.manual_seed(0)
        lg = LayerGemms(model, t)
        for gemm in ("up", "down"):
            variants = {"heuristic": None}
            if t == 16384:
                variants["128x192_pp_c2"] = pingpong_c2(gemm)
            calls, outs = {}, {}
            for name, cfg in variants.items():
                outs[name], calls[name] = lg.call(gemm, cfg)
            for fn in calls.values():
                fn()
                if ncu:
                    fn()
            torch.cuda.synchronize()
            if ncu:
                continue
            info = {"model": model, "T": t, "gemm": gemm,
                    "heuristic": str(lg.chosen(gemm).kernel_name if hasattr(lg.chosen(gemm), "kernel_name") else "classes")}
            for name, out in outs.items():
                info[f"{name}_bit_identical_to_heuristic"] = bool(torch.equal(out, outs["heuristic"]))
            info["ms"] = time_interleaved(calls)
            info["clock"] = {name: sample_clock(fn) for name, fn in calls.items()}
            print(info, flush=True)
            rows.append(info)
        del lg
        torch.cuda.empty_cache()
    if not ncu:
        save("dev_power_check", rows, {"note": "ms: three interleaved repeats of a median of 10 replays, L2 "
                                               "read-flushed; clock: nvidia-smi every 50 ms while the call runs back "
                                               "to back for 1.5 s (no flush)"})


if __name__ == "__main__":
    main()
