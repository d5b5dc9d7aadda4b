"""192-row cooperative tiles (three consumer warp groups) in 2-CTA clusters against the
heuristic's 128- and 64-row tiles (dev check on the H200, not a test).

dev_time_budget_check.json: on exact routing the heuristic's tiles are level with cuBLAS at
T = 16384, and the benchmark's uniform routing costs 8-20 %: an expert of a few rows more than a
multiple of 128 gets a mostly empty last tile that streams its weight block for those rows. A
192-row tile takes an expert of 257-384 rows in two tiles (one weight read per cluster pair)
and reads 14 % fewer L2 bytes per FLOP than 128 x 192 in a cluster. This times each GEMM of the
layer with the heuristic's classes (``shipped``) and with every normal-mode class (64- or
128-row) replaced by 192 x 192 (``t192``) or 192 x 128 (``t192x128``) cluster tiles. Outputs
NaN-poisoned and compared bit for bit. Five interleaved repeats of a median of 10 replays,
L2 read-flushed. Result: benchmarks/results/dev_triple_tiles_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_triple_tiles_check.py [MODEL:T:ROUTING ...]
"""
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import class_variants_main

from staticbatch_moe._gemm_config import triple_config

PTS = [(m, 16384, "uniform") for m in ("GPT-OSS-120B", "DeepSeek-V3", "Qwen3-235B-A22B", "Qwen3-30B-A3B",
                                       "Mixtral-8x7B")]
PTS += [(m, 4096, "uniform") for m in ("Qwen3-30B-A3B", "Qwen3-235B-A22B")]
PTS += [("Mixtral-8x7B", 1024, "uniform"), ("GPT-OSS-120B", 4096, "skewed")]


def normal(c) -> bool:  # type: ignore[no-untyped-def]
    return not c.swap_ab and c.block_m in (64, 128)


def variants(classes) -> dict:  # type: ignore[no-untyped-def]
    def swap(bn: int):  # type: ignore[no-untyped-def]
        return tuple(dataclasses.replace(c, config=triple_config(bn, c.config.activation, c.config.dtype,
                                                                  c.config.gather))
                     if normal(c.config) else c for c in classes)
    return {"shipped": tuple(classes), "t192": swap(192), "t192x128": swap(128)}


def main() -> None:
    class_variants_main("dev_triple_tiles_check", PTS, variants, sys.argv[1:])


if __name__ == "__main__":
    main()
