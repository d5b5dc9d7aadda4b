"""The pair order of 2-CTA clusters against m-fastest tile ids (dev check on the H200, not a test).

With m-fastest tile ids the two CTAs of a cluster share a weight tile only where an expert's tiles
start at an even id, and an expert's partly empty last m-block pairs with a full tile, whose pace
it runs at (the pair releases every stage together). dev_low_points_ncu.txt found the lowest
points' tensor pipes idle 20-35 % of the time at a locked clock, against 7-12 % for cuBLAS's
batched GEMM on the same regular problem. ``po``: the heuristic's clustered classes with
``pair_order=True`` (see "Pair order" in grouped_gemm.cuh); where a GEMM has several classes both
sides are passed explicitly (``classes`` against ``po``: one launch after the other, as the
variants run).

Each GEMM alone on tiled weights, five interleaved repeats of a median of 10 replays, L2
read-flushed, bit-identical outputs required. Result: benchmarks/results/dev_pair_order_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_pair_order_check.py [--points Model:T:routing,...]
"""
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import heuristic_variants_main, layer_classes

MODELS = ("Mixtral-8x7B", "Qwen3-30B-A3B", "DeepSeek-V3", "Qwen3-235B-A22B", "GPT-OSS-120B")
POINTS = [(m, t, "uniform") for t in (4096, 16384) for m in MODELS]
POINTS += [("Qwen3-30B-A3B", 4096, "skewed"), ("Qwen3-235B-A22B", 4096, "skewed"), ("GPT-OSS-120B", 4096, "skewed")]


def variant_classes(classes: tuple) -> dict[str, tuple]:
    """``po`` (and ``classes`` where there are several) of one GEMM's heuristic classes; nothing
    without a clustered class."""
    if not any(c.config.cluster == 2 for c in classes):
        return {}
    po = tuple(dataclasses.replace(c, config=dataclasses.replace(c.config, pair_order=True))
               if c.config.cluster == 2 else c for c in classes)
    return ({"classes": classes} if len(classes) > 1 else {}) | {"po": po}


def variants(model: str, t: int, gemm: str, plain, tiled) -> dict:  # type: ignore[no-untyped-def]
    out = {"heuristic": (tiled, None, None)}
    for name, classes in variant_classes(layer_classes(model, t, tiled_w=True)[gemm]).items():
        out[name] = (tiled, classes, None)
    return out


def main() -> int:
    cfgs = [c.config for m, t, _ in POINTS for cl in layer_classes(m, t, tiled_w=True).values()
            for v in variant_classes(cl).values() for c in v]
    return heuristic_variants_main("dev_pair_order_check", POINTS, variants, cfgs,
                                   "each GEMM alone, tiled weights: the heuristic's clustered classes with "
                                   "pair_order=True (po); several classes: both passed explicitly (classes, po); ms, "
                                   "five interleaved repeats")


if __name__ == "__main__":
    sys.exit(main())
