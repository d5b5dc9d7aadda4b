"""A class of decode-like swap tiles for the coldest experts under skewed routing (dev check on
the H200, not a test).

Under skewed routing at T = 4096 (DeepSeek-V3, GPT-OSS-120B) most experts are cold: a few rows
each, in the fitted 160-token class, whose 36 KB stages leave a 5-deep ring (80 KB of weight in
flight per SM) for what is weight streaming. Decode's swap tiles of 16-48 tokens keep 9-12
stages. Here the heuristic's two classes (128-row clusters above 160 rows, fitted tiles below)
against three with the experts of at most 48, 32 or 16 rows given swap tiles of that many tokens
(cp.async gather for gate/up, as at decode). Each GEMM alone on tiled weights, five interleaved
repeats of a median of 10 replays, L2 read-flushed, bit-identical outputs required.

Run::

    PYTHONPATH=. python benchmarks/dev_cold_class_check.py [--points Model:T:routing,...]
"""
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import heuristic_variants_main, layer_classes

from staticbatch_moe._gemm_config import TileClass, _swap_config

POINTS = [("GPT-OSS-120B", 4096, "skewed"), ("DeepSeek-V3", 4096, "skewed"), ("GPT-OSS-120B", 4096, "uniform")]
COLD = (48, 32, 16)


def cold_config(rows: int, up: bool):  # type: ignore[no-untyped-def]
    return dataclasses.replace(_swap_config(rows, 128, "silu_and_mul" if up else None, "bf16", up), tiled_w=True)


def variants(model: str, t: int, gemm: str, plain, tiled) -> dict:  # type: ignore[no-untyped-def]
    up = gemm == "up"
    cl = layer_classes(model, t, tiled_w=True)[gemm]
    out = {"heuristic": (tiled, None, None)}
    for rows in COLD:
        lowest = cl[-1]
        split = (*cl[:-1], TileClass(lowest.config, rows, lowest.max_rows), TileClass(cold_config(rows, up), 0, rows))
        out[f"cold{rows}"] = (tiled, split, None)
    return out


def main() -> int:
    return heuristic_variants_main('dev_cold_class_check', POINTS, variants, {cold_config(r, up) for r in COLD for up in (False, True)},
                                   "each GEMM alone, tiled weights: the heuristic's classes and a third class of 48-, 32- or 16-token "
                                   "swap tiles for the experts of at most that many rows; ms, five interleaved repeats")


if __name__ == "__main__":
    sys.exit(main())
