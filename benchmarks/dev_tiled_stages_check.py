"""Does the ring depth decide what tiled weights gain (dev check on the H200, not a test)?

Tiled weights stream 3-6 % faster than plain ones in decode's swap tiles (12 stages) and 2-5 %
slower in the fitted 160-token swap tiles of T = 4096 (5 stages, all that fits). Here the same
swap tiles with fewer stages: decode tiles (8 tokens x 128 weight rows) with 12, 8 and 5 stages at
T = 16, and fitted tiles with 5 and 4 stages (160 tokens) and 6 and 5 (128 tokens) for every
expert at T = 4096, each GEMM alone on plain and tiled weights, three interleaved repeats of a
median of 10 replays, L2 read-flushed, bit-identical outputs required. If the tiled / plain ratio
rises as the stages fall, the fitted tiles lose for want of bytes in flight.

Run::

    PYTHONPATH=. python benchmarks/dev_tiled_stages_check.py [--points Model:T:routing,...]
"""
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import add_tiled_over_plain, hopper_points, plain_and_tiled, save, time_gemm_variants

import staticbatch_moe as moe
from staticbatch_moe._gemm_config import _swap_config, fitted_config

POINTS = [("DeepSeek-V3", 16, "uniform"), ("Qwen3-235B-A22B", 16, "uniform"), ("DeepSeek-V3", 4096, "uniform"),
          ("GPT-OSS-120B", 4096, "uniform")]


def configs(t: int, up: bool) -> list[moe.GemmConfig]:
    act = "silu_and_mul" if up else None
    if t <= 128:
        base = _swap_config(8, 128, act, "bf16", up)
        return [dataclasses.replace(base, stages=s) for s in (12, 8, 5)]
    return [dataclasses.replace(fitted_config(bm, act, "bf16", up), stages=s) for bm, ss in ((160, (5, 4)), (128, (6, 5)))
            for s in ss]


def variants(model: str, t: int, gemm: str, plain, tiled) -> dict:  # type: ignore[no-untyped-def]
    """Every configuration of :func:`configs` on plain and on tiled weights, named by kernel."""
    return plain_and_tiled(configs(t, gemm == "up"), plain, tiled)


def main() -> int:
    points = hopper_points("dev_tiled_stages_check", POINTS)
    if points is None:
        return 0
    cfgs = [dataclasses.replace(c, tiled_w=tw) for _, t, _ in points for up in (False, True) for c in configs(t, up)
            for tw in (False, True)]
    rows = time_gemm_variants(points, variants, configs=cfgs)
    add_tiled_over_plain(rows)
    save("dev_tiled_stages_check", rows, {"note": "each GEMM alone, swap tiles with fewer stages, plain and tiled "
                                          "weights; ms, three interleaved repeats"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
