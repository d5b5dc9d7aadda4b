"""Fitted swap tiles of 144 against 160 tokens on tiled weights at T = 4096 (dev check on the
H200, not a test).

On tiled weights the 160-token fitted tiles lose 1-6 % to plain weights while the 128-token ones
are level (dev_tiled_stages_check.json). With plain weights 144 tokens measured level with 160
(USE_FITTED_WIDE). Here each GEMM alone at DeepSeek-V3 and GPT-OSS-120B T = 4096, tiled weights,
the heuristic's classes (128-row clusters above 160 rows, fitted 160-token tiles below) against
the same with the split at 144 and 144-token tiles, and the heuristic on plain weights (the
reference), three interleaved repeats of a median of 10 replays, L2 read-flushed, bit-identical
outputs required.

Run::

    PYTHONPATH=. python benchmarks/dev_fitted_tiled_check.py [--points Model:T:routing,...]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import hopper_points, layer_classes, print_ratios, save, time_gemm_variants

from staticbatch_moe._gemm_config import TileClass, fitted_config

POINTS = [("DeepSeek-V3", 4096, "uniform"), ("GPT-OSS-120B", 4096, "uniform"), ("DeepSeek-V3", 4096, "skewed"),
          ("GPT-OSS-120B", 4096, "skewed")]


def variants(model: str, t: int, gemm: str, plain, tiled) -> dict:  # type: ignore[no-untyped-def]
    """The heuristic on plain weights, on tiled weights, and with the split at 144."""
    up = gemm == "up"
    cl = layer_classes(model, t, tiled_w=True)[gemm]
    f144 = fitted_config(144, "silu_and_mul" if up else None, "bf16", up)
    return {"plain": (plain, None, None), "tiled": (tiled, tuple(cl), None),
            "tiled_144": (tiled, (TileClass(cl[0].config, 144, None), TileClass(f144, 0, 144)), None)}


def main() -> int:
    points = hopper_points("dev_fitted_tiled_check", POINTS)
    if points is None:
        return 0
    rows = time_gemm_variants(points, variants)
    for row in rows:
        med = row["median_ms"]
        row["over_plain"] = {n: round(v / med["plain"], 4) for n, v in med.items()}
        print_ratios(row, {n: r for n, r in row["over_plain"].items() if n != "plain"}, f"plain {med['plain']:.4f} ")
    save("dev_fitted_tiled_check", rows, {"note": "each GEMM alone: heuristic on plain weights, on tiled weights "
                                          "(fitted 160), and with fitted 144 below a 144-row split; ratios over plain"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
