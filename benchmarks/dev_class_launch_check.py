"""The heuristic's three tile classes at T = 4096 on plain and tiled weights, with and without
programmatic launches of the later classes (dev check on the H200, not a test).

At DeepSeek-V3 and GPT-OSS-120B at T = 4096 (about 128 rows per expert: a 128-row cluster class,
a 64-row ping-pong class and fitted 160-token swap tiles) tiled weights lose 3-5 % to plain ones
in bench_grouped_gemm, more than any class alone lost (dev_tiled_class_check.json). Here each
GEMM alone: the heuristic's launches (the fitted and clustered classes as programmatic
dependents), the same with no programmatic launch (``programmatic_pays`` patched to False), and
on tiled weights two classes (128-row clusters above 160 rows, fitted tiles below), three
interleaved repeats of a median of 10 replays, L2 read-flushed, bit-identical outputs required.

Run::

    PYTHONPATH=. python benchmarks/dev_class_launch_check.py [--points Model:T:routing,...]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import hopper_points, layer_classes, print_ratios, save, time_gemm_variants

from staticbatch_moe import _gemm_config as cfgmod

POINTS = [("DeepSeek-V3", 4096, "uniform"), ("GPT-OSS-120B", 4096, "uniform"), ("DeepSeek-V3", 4096, "skewed"),
          ("GPT-OSS-120B", 4096, "skewed")]
PAYS = cfgmod.programmatic_pays


def prog(on: bool):  # type: ignore[no-untyped-def]
    """A hook that switches the programmatic launches of the heuristic's classes on or off."""
    def hook() -> None:
        cfgmod.programmatic_pays = PAYS if on else (lambda cfg: False)
    return hook


def variants(model: str, t: int, gemm: str, plain, tiled) -> dict:  # type: ignore[no-untyped-def]
    """The heuristic on both layouts with and without programmatic launches; two classes on tiled."""
    cl = layer_classes(model, t, tiled_w=True)[gemm]
    hot, fitted = cl[0], cl[-1]
    two = (cfgmod.TileClass(hot.config, fitted.max_rows, None), fitted)
    return {"plain": (plain, None, prog(True)), "plain_noprog": (plain, None, prog(False)),
            "tiled": (tiled, None, prog(True)), "tiled_noprog": (tiled, None, prog(False)),
            "tiled_two": (tiled, two, prog(True))}


def main() -> int:
    points = hopper_points("dev_class_launch_check", POINTS)
    if points is None:
        return 0
    try:
        rows = time_gemm_variants(points, variants)
    finally:
        cfgmod.programmatic_pays = PAYS
    for row in rows:
        med = row["median_ms"]
        row["over_plain"] = {n: round(v / med["plain"], 4) for n, v in med.items()}
        row["classes"] = [f"{c.config.kernel_name}:{c.min_rows}-{c.max_rows}"
                          for c in layer_classes(row["model"], row["T"], tiled_w=True)[row["gemm"]]]
        print_ratios(row, {n: r for n, r in row["over_plain"].items() if n != "plain"}, f"plain {med['plain']:.4f} ")
    save("dev_class_launch_check", rows, {"note": "each GEMM alone: the heuristic's classes on plain and tiled "
                                          "weights with and without programmatic launches, and two classes on "
                                          "tiled weights; ratios over plain"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
