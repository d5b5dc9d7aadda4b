"""How far up the fitted class should reach now that fitted tiles load 32-row token boxes (dev
check on the H200, not a test).

At about 128 rows per expert (DeepSeek-V3 and GPT-OSS-120B at T = 4096) the heuristic gives the
experts of at most 160 rows fitted 160-token tiles and the others 128-row clusters. The
thirteenth session measured fitted tiles up to 320 rows level with that split; 32-row token
boxes (80f0fa7) made the fitted tiles 4-11 % faster since. Here the split moved to 192, 240 and
320 rows (an expert of 161-320 rows takes two fitted tiles). Each GEMM alone on tiled weights,
five interleaved repeats of a median of 10 replays, L2 read-flushed, bit-identical outputs required.

Run::

    PYTHONPATH=. python benchmarks/dev_fitted_reach_check.py [--points Model:T:routing,...]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import heuristic_variants_main, layer_classes

from staticbatch_moe._gemm_config import TileClass

POINTS = [("DeepSeek-V3", 4096, "uniform"), ("GPT-OSS-120B", 4096, "uniform"), ("DeepSeek-V3", 4096, "skewed"),
          ("GPT-OSS-120B", 4096, "skewed")]
SPLITS = (192, 240, 320)


def variants(model: str, t: int, gemm: str, plain, tiled) -> dict:  # type: ignore[no-untyped-def]
    hot, fitted = layer_classes(model, t, tiled_w=True)[gemm]
    out = {"heuristic": (tiled, None, None)}
    for split in SPLITS:
        out[f"fitted_to_{split}"] = (tiled, (TileClass(hot.config, split, None), TileClass(fitted.config, 0, split)), None)
    return out


def main() -> int:
    return heuristic_variants_main('dev_fitted_reach_check', POINTS, variants, (),
                                   "each GEMM alone, tiled weights: the heuristic's split between 128-row clusters and fitted "
                                   "160-token tiles at 160 rows, moved to 192 / 240 / 320; ms, five interleaved repeats")


if __name__ == "__main__":
    sys.exit(main())
