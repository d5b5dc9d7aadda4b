"""Single tile configurations against the heuristic's classes at T = 4096 with tiled weights
(dev check on the H200, not a test).

The points of T = 4096 hold four of the five lowest efficiencies of bench_grouped_gemm
(``beeb3a0``), and with tiled weights the classes rank differently (dev_tiled_class_check.json:
DeepSeek-V3's gate/up ran faster with 64 x 256 tiles alone than with the heuristic's three
classes). Here each GEMM of the layer runs with the heuristic's classes (plain and tiled weights)
and with each candidate configuration for every expert (tiled weights), three interleaved
repeats of a median of 10 replays, L2 read-flushed; outputs must be bit-identical to the
heuristic's on plain weights. (dev_t4096_tiled_candidates_check.json came from the form of
``9148775``, before the heuristic chose classes for tiled weights: its ``heuristic_tiled`` is
the plain-weight classes run on tiled weights.)

Run::

    PYTHONPATH=. python benchmarks/dev_t4096_tiled_candidates_check.py [--points Model:T:routing,...]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import hopper_points, layer_classes, normal_candidate, print_ratios, save, time_gemm_variants

POINTS = [(m, 4096, "uniform") for m in ("Qwen3-30B-A3B", "Qwen3-235B-A22B", "GPT-OSS-120B", "DeepSeek-V3")]
# (block_m, block_n, pingpong, cluster)
CANDIDATES = [(64, 256, True, 1), (64, 192, True, 1), (64, 128, True, 1), (128, 192, True, 2), (128, 256, False, 2),
              (128, 128, False, 2)]


def variants(model: str, t: int, gemm: str, plain, tiled) -> dict:  # type: ignore[no-untyped-def]
    """The heuristic on plain and on tiled weights, then each candidate on tiled weights."""
    cands = [normal_candidate(*c, gemm == "up", True) for c in CANDIDATES]
    return {"heuristic_plain": (plain, None, None), "heuristic_tiled": (tiled, None, None),
            **{c.kernel_name: (tiled, c, None) for c in cands}}


def main() -> int:
    points = hopper_points("dev_t4096_tiled_candidates_check", POINTS)
    if points is None:
        return 0
    cfgs = [c.config for m, t, _ in points for tw in (False, True)
            for cls in layer_classes(m, t, tiled_w=tw).values() for c in cls]
    cfgs += [normal_candidate(*c, up, True) for c in CANDIDATES for up in (False, True)]
    rows = time_gemm_variants(points, variants, configs=cfgs)
    for row in rows:
        med = row["median_ms"]
        row["over_heuristic_plain"] = {n: round(v / med["heuristic_plain"], 4) for n, v in med.items()}
        print_ratios(row, {n.replace("sb_grouped_gemm_bf16_", ""): r for n, r in row["over_heuristic_plain"].items()
                           if n != "heuristic_plain"}, f"heuristic plain {med['heuristic_plain']:.4f} ")
    save("dev_t4096_tiled_candidates_check", rows, {"note": "each GEMM: the heuristic's classes on plain and tiled "
                                                    "weights, candidate single configurations on tiled weights"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
