"""Store warps (``GemmConfig.store_warps``) against the consumers storing their own output, on
the H200 (dev check, not a test).

The 128-row clustered tiles of the layer GEMMs where the heuristic runs them (T = 16384 for every
model; Mixtral-8x7B also at T = 1024 and 4096) and Qwen3-30B-A3B at T = 4096 (where the heuristic
runs 64-row ping-pong tiles): the same tile with and without store warps (each with the deepest
ring that fits), three interleaved repeats (CUDA-graph replay, L2 flushed, median of 10 each),
and whether the two outputs are bit-identical. The result goes to
benchmarks/results/dev_store_warps_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_store_warps_check.py
"""
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import LayerGemms, compile_configs, interleaved_ms, save

import staticbatch_moe as moe
from staticbatch_moe._gemm_config import _max_stages, _normal_config, with_store_warps

POINTS = [("Qwen3-30B-A3B", 16384), ("Qwen3-235B-A22B", 16384), ("GPT-OSS-120B", 16384), ("DeepSeek-V3", 16384),
          ("Mixtral-8x7B", 16384), ("Mixtral-8x7B", 4096), ("Mixtral-8x7B", 1024), ("Qwen3-30B-A3B", 4096)]
REPEATS = 3


def pair(layer: LayerGemms, gemm: str) -> dict[str, moe.GemmConfig]:
    """{"inline": the 128-row tile without store warps, "store_warps": with}."""
    c = layer.chosen(gemm)
    bn = c.block_n if c.block_n in (192, 256) else 256
    base = dataclasses.replace(_normal_config(128, bn, False, c.activation, "bf16", c.gather),
                               gather_mode=c.gather_mode if c.gather else "cp_async", cluster=2)
    if base.gather:
        base = dataclasses.replace(base, gather_mode="staged")
    return {"inline": dataclasses.replace(base, stages=_max_stages(128, bn, 6)), "store_warps": with_store_warps(base)}


def bench() -> list[dict]:
    rows = []
    torch.manual_seed(0)
    for model, t in POINTS:
        layer = LayerGemms(model, t)
        for gemm in ("down", "up"):
            cands = pair(layer, gemm)
            runs = {}
            for name, cfg in cands.items():
                out, fn = layer.call(gemm, cfg)
                fn()
                runs[name] = (out, fn)
            torch.cuda.synchronize()
            equal = bool(torch.equal(runs["inline"][0], runs["store_warps"][0]))
            no_nan = not bool(torch.isnan(runs["store_warps"][0]).any())
            ms = interleaved_ms({n: fn for n, (_, fn) in runs.items()}, REPEATS)
            row = {"model": model, "T": t, "gemm": gemm, "bitwise_equal": equal, "no_nan": no_nan,
                   "configs": {n: c.kernel_name for n, c in cands.items()}, **ms,
                   "chosen": layer.chosen(gemm).kernel_name}
            rows.append(row)
            print(row, flush=True)
        del layer
        torch.cuda.empty_cache()
    return rows


if __name__ == "__main__":
    configs = sorted({c for model, t in POINTS for g in ("up", "down") for c in pair(LayerGemms(model, t, data=False), g).values()},
                     key=lambda c: c.kernel_name)
    report = compile_configs(configs)
    print(report, flush=True)
    save("dev_store_warps_check", bench(),
         {"note": "ms, median of 10 per repeat, L2 flushed, repeats interleaved; 'chosen' is the heuristic of the "
                  "commit for the point", "ptxas": report})
