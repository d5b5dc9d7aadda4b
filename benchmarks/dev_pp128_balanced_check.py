"""128 x 192 ping-pong cluster tiles for the 64-row ping-pong classes (dev check on the H200, not
a test).

The eighth session timed 128 x 192 ping-pong tiles in 2-CTA clusters against the heuristic's
64-row ping-pong tiles at the points where experts have ~128-320 rows
(dev_pingpong128_check.json: level, -4 .. +8 %). Those consumers then spilled 8-12 bytes; since
the fifteenth session the 128-row ping-pong kernels give the consumers 232 registers and spill
nothing, and the same tile replaced the cooperative 128-row tiles (USE_PINGPONG128). This times
each GEMM of the layer with the heuristic's classes (``shipped``), with every 64-row ping-pong
class replaced by that tile (``pp192c2``), and by the 64-row tile in a 2-CTA cluster
(``pp64c2``). Outputs NaN-poisoned and compared bit for bit. Five interleaved repeats of a
median of 10 replays, L2 read-flushed. Result: benchmarks/results/dev_pp128_balanced_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_pp128_balanced_check.py [MODEL:T:ROUTING ...]
"""
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import class_variants_main

from staticbatch_moe._gemm_config import _normal_config

PTS = [("Mixtral-8x7B", 1024, r) for r in ("uniform", "skewed")]
PTS += [(m, 4096, r) for m in ("Qwen3-30B-A3B", "Qwen3-235B-A22B") for r in ("uniform", "skewed")]
PTS += [(m, 4096, "skewed") for m in ("DeepSeek-V3", "GPT-OSS-120B")]


def pingpong64(c) -> bool:  # type: ignore[no-untyped-def]
    return not c.swap_ab and c.pingpong and c.block_m == 64


def pp192c2(c):  # type: ignore[no-untyped-def]
    cfg = _normal_config(128, min(c.block_n, 192), True, c.activation, c.dtype, c.gather)
    return dataclasses.replace(cfg, gather_mode=c.gather_mode, cluster=2)


def variants(classes) -> dict:  # type: ignore[no-untyped-def]
    def swap(f):  # type: ignore[no-untyped-def]
        return tuple(dataclasses.replace(c, config=f(c.config)) if pingpong64(c.config) else c for c in classes)
    return {"shipped": tuple(classes), "pp192c2": swap(pp192c2),
            "pp64c2": swap(lambda c: dataclasses.replace(c, cluster=2))}


def main() -> None:
    class_variants_main("dev_pp128_balanced_check", PTS, variants, sys.argv[1:])


if __name__ == "__main__":
    main()
