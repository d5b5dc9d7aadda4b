"""Which tile class loses with tiled weights at T = 4096 (dev check on the H200, not a test).

bench_grouped_gemm at ``beeb3a0`` and both dev_tiled_cluster_check runs: GPT-OSS-120B and
DeepSeek-V3 at T = 4096 with uniform routing were 4-11 % slower per GEMM with tiled weights;
the heuristic runs three tile classes there (128 x 192 clusters, 64 x 192 ping-pong tiles,
fitted 160-token swap tiles). Here each GEMM of the layer runs with the heuristic's classes and
with each class's configuration alone for every expert (``config=``), plain weights against
tiled, three interleaved repeats of a median of 10 replays, L2 read-flushed; outputs must be
bit-identical. (dev_tiled_class_check.json came from the form of ``0218cc4``, which timed each
configuration's plain / tiled pair apart from the others; the same measurement.)

Run::

    PYTHONPATH=. python benchmarks/dev_tiled_class_check.py [--points Model:T:routing,...]
"""
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import add_tiled_over_plain, hopper_points, layer_classes, plain_and_tiled, save, time_gemm_variants

POINTS = [("GPT-OSS-120B", 4096, "uniform"), ("DeepSeek-V3", 4096, "uniform")]


def variants(model: str, t: int, gemm: str, plain, tiled) -> dict:  # type: ignore[no-untyped-def]
    """The heuristic's classes and each class's configuration alone, on plain and tiled weights."""
    return plain_and_tiled([None] + [c.config for c in layer_classes(model, t)[gemm]], plain, tiled)


def main() -> int:
    points = hopper_points("dev_tiled_class_check", POINTS)
    if points is None:
        return 0
    base = [c.config for m, t, _ in points for cls in layer_classes(m, t).values() for c in cls]
    rows = time_gemm_variants(points, variants, configs=base + [dataclasses.replace(c, tiled_w=True) for c in base])
    add_tiled_over_plain(rows)
    save("dev_tiled_class_check", rows, {"note": "each GEMM with the heuristic's classes and with each class's "
                                         "configuration alone; plain against tiled weights; ms, three repeats"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
