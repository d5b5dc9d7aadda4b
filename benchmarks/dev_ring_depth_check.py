"""Ring depth of the prefill tiles, and dynamic tiles for the decode down GEMMs (dev check on the
H200, not a test).

1. The points below 0.70 at T >= 1024 (Qwen3-30B-A3B and Qwen3-235B-A22B at T = 4096, Mixtral-8x7B
   at T = 1024, Qwen3-30B-A3B at T = 16384) move about as many bytes from HBM as they compute
   (their weight-stream time is 0.7-0.8 of their compute time at the ceilings), so a tile's
   weight stages come from HBM while it computes. Their tiles run a 4-stage ring (40 KB stages);
   a fifth does not fit beside two epilogue buffers per consumer. Here each single-class GEMM
   also runs with 3 stages (``s3``): if one stage less costs little, one more will gain less.
2. The decode down GEMMs (swap mode, no gather) take their tiles in the static order (the fitted
   class at T = 128 takes dynamic tiles as it launches); ``dyn`` gives every class dynamic tiles.

Each GEMM alone on tiled weights, against the heuristic's classes, five interleaved repeats of a
median of 10 replays, L2 read-flushed, bit-identical outputs required. Result:
benchmarks/results/dev_ring_depth_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_ring_depth_check.py [--points Model:T:routing,...]
"""
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import heuristic_variants_main, layer_classes

from staticbatch_moe._gemm_config import TileClass

MODELS = ("Mixtral-8x7B", "Qwen3-30B-A3B", "DeepSeek-V3", "Qwen3-235B-A22B", "GPT-OSS-120B")
POINTS = [("Qwen3-30B-A3B", 4096, "uniform"), ("Qwen3-235B-A22B", 4096, "uniform"), ("Mixtral-8x7B", 1024, "uniform"),
          ("Qwen3-30B-A3B", 16384, "uniform"), ("GPT-OSS-120B", 16384, "uniform")]
POINTS += [(m, t, "uniform") for t in (16, 128) for m in MODELS]


def variant_classes(classes: tuple) -> dict[str, tuple]:
    """The variants of one GEMM's heuristic classes: ``s3`` for a single normal-mode class, ``dyn``
    where every class is a swap tile without gather or split-K (all of them dynamic)."""
    cfgs = [c.config for c in classes]
    if len(cfgs) == 1 and not cfgs[0].swap_ab:
        return {"s3": (TileClass(dataclasses.replace(cfgs[0], stages=3)),)}
    if all(c.swap_ab and not c.gather and c.split_k == 1 for c in cfgs) and not all(c.dynamic for c in cfgs):
        return {"dyn": tuple(dataclasses.replace(c, config=dataclasses.replace(c.config, dynamic=True))
                             for c in classes)}
    return {}


def variants(model: str, t: int, gemm: str, plain, tiled) -> dict:  # type: ignore[no-untyped-def]
    out = {"heuristic": (tiled, None, None)}
    for name, classes in variant_classes(layer_classes(model, t, tiled_w=True)[gemm]).items():
        out[name] = (tiled, classes, None)
    return out


def main() -> int:
    cfgs = [c.config for m, t, _ in POINTS for cl in layer_classes(m, t, tiled_w=True).values()
            for v in variant_classes(cl).values() for c in v]
    return heuristic_variants_main("dev_ring_depth_check", POINTS, variants, cfgs,
                                   "each GEMM alone, tiled weights: single normal-mode classes with 3 stages (s3), "
                                   "single swap classes without gather with dynamic tiles (dyn); ms, five "
                                   "interleaved repeats")


if __name__ == "__main__":
    sys.exit(main())
