"""Where 128-row clustered tiles should take over from 64-row ping-pong tiles with tiled weights
(dev check on the H200, not a test).

dev_t4096_tiled_candidates_check.json found 128 x 192 ping-pong clusters for every expert 7 %
faster than the heuristic's classes at Qwen3-235B T = 4096 gate/up with tiled weights (the
heuristic gives 128-row tiles only to experts of more than PINGPONG_MAX_ROWS = 320 rows, and none
at all below HOT_TALL_MIN_WEIGHT, e.g. Qwen3-30B). Here each GEMM of the layer, on tiled weights,
runs with the heuristic's classes and with the 128-row class moved down to experts of more than
192 or 128 rows, or given every expert; every variant passed as explicit classes (so all launch
alike), outputs compared bit for bit with the heuristic's on plain weights, three interleaved
repeats of a median of 10 replays, L2 read-flushed.

Run::

    PYTHONPATH=. python benchmarks/dev_tiled_rule_check.py [--points Model:T:routing,...]
"""
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import hopper_points, layer_classes, print_ratios, save, time_gemm_variants

import staticbatch_moe as moe
from staticbatch_moe._gemm_config import TileClass, _prefill_config

POINTS = [("Qwen3-30B-A3B", 2048, "uniform"), ("Qwen3-30B-A3B", 4096, "uniform"), ("Qwen3-30B-A3B", 4096, "skewed"),
          ("Qwen3-235B-A22B", 2048, "uniform"),
          ("Qwen3-235B-A22B", 4096, "uniform"), ("Qwen3-235B-A22B", 4096, "skewed"),
          ("Mixtral-8x7B", 1024, "uniform"), ("Mixtral-8x7B", 1024, "skewed"),
          ("GPT-OSS-120B", 4096, "uniform"), ("DeepSeek-V3", 4096, "uniform")]


def variants(classes: tuple, up: bool, k: int) -> dict[str, tuple]:
    """The heuristic's classes and the 128-row class moved down (``>192``, ``>128``) or given
    every expert (``all128``), where the heuristic has a 64-row ping-pong class."""
    out = {"heuristic": tuple(classes)}
    mid = [c for c in classes if c.config.block_m == 64 and not c.config.swap_ab]
    if not mid:
        return out
    base = mid[0]
    hot = next((c.config for c in classes if c.config.block_m == 128 and not c.config.swap_ab), None)
    if hot is None:
        hot = _prefill_config(128, base.config.block_n, "silu_and_mul" if up else None, "bf16", up, k)
    low = [c for c in classes if c.max_rows is not None and c.max_rows <= base.min_rows]
    lo = max((c.max_rows for c in low), default=0)
    for th in (192, 128):
        if th > lo:
            out[f">{th}"] = (TileClass(hot, th, None), TileClass(base.config, lo, th), *low)
    out["all128"] = (TileClass(hot),)
    return out


def gemm_variants(model: str, t: int, gemm: str, plain, tiled) -> dict:  # type: ignore[no-untyped-def]
    """The heuristic's plain classes on plain weights (the reference), then :func:`variants` on
    tiled weights."""
    h, i, _, _ = moe.MODEL_SHAPES[model]
    vs = variants(layer_classes(model, t)[gemm], gemm == "up", h if gemm == "up" else i)
    return {"heuristic_plain": (plain, vs["heuristic"], None), **{n: (tiled, c, None) for n, c in vs.items()}}


def main() -> int:
    points = hopper_points("dev_tiled_rule_check", POINTS)
    if points is None:
        return 0
    cfgs = []
    for m, t, _ in points:
        h, i, _, _ = moe.MODEL_SHAPES[m]
        for gemm, cl in layer_classes(m, t).items():
            for v in variants(cl, gemm == "up", h if gemm == "up" else i).values():
                cfgs += [x for c in v for x in (c.config, dataclasses.replace(c.config, tiled_w=True))]
    rows = time_gemm_variants(points, gemm_variants, configs=cfgs)
    for row in rows:
        med = row["median_ms"]
        row["over_heuristic_tiled"] = {n: round(v / med["heuristic"], 4) for n, v in med.items()}
        print_ratios(row, {n: r for n, r in row["over_heuristic_tiled"].items() if n != "heuristic"},
                     f"heuristic tiled {med['heuristic']:.4f} ms ")
    save("dev_tiled_rule_check", rows, {"note": "each GEMM on tiled weights: the heuristic's classes and the 128-row "
                                        "class moved down; ratios over the heuristic on tiled weights"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
