"""Dynamic tiles for the 128-row clustered tiles (dev check on the H200, not a test).

ncu (dev_dram_traffic_ncu.txt, dev_dram_traffic_causes_ncu.txt) found the T = 16384 GEMMs
reading several times their compulsory bytes from DRAM: Mixtral-8x7B gate/up 16-18 GB against
2.3 GB, down 9-10 GB against 1.9 GB, DeepSeek-V3 gate/up 33-37 GB against 17 GB. Without a
cluster, on exact routing (every tile as long), DeepSeek-V3's gate/up read 21 GB; with uniform
routing 60-71 GB. The tiles that share a weight block (an expert's m-blocks of one n-block) or a
token block start together in the first wave only: block b runs tiles b, b + grid, b + 2 grid,
..., so blocks drift apart over the waves and the second reader of a block finds it evicted.
With dynamic tiles (GemmConfig.dynamic) each block (each cluster) takes the next tile (pair) from
a global counter when it needs one, so neighbouring tiles start together whatever the drift.

This times each GEMM of the layer with the heuristic's tile classes, and with every 128-row
cooperative class dynamic (``dyn``), at the five T = 16384 points and at the skewed T = 4096
points whose hot class runs those tiles. Outputs are NaN-poisoned and compared bit for bit.
Five interleaved repeats of a median of 10 replays, L2 read-flushed.
Result: benchmarks/results/dev_dynamic_tiles_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_dynamic_tiles_check.py [MODEL:T:ROUTING ...]

(with points given: only those, saved as dev_dynamic_tiles_check_<model>_<T>.json).
"""
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import class_variants_main

PTS = [(m, 16384, "uniform") for m in ("Mixtral-8x7B", "Qwen3-30B-A3B", "DeepSeek-V3", "Qwen3-235B-A22B",
                                       "GPT-OSS-120B")]
PTS += [(m, 4096, "skewed") for m in ("DeepSeek-V3", "GPT-OSS-120B", "Qwen3-235B-A22B")]


def can_be_dynamic(c) -> bool:  # type: ignore[no-untyped-def]
    return not c.swap_ab and not c.pingpong and c.block_m == 128 and (not c.gather or c.gather_mode == "staged")


def variants(classes) -> dict:  # type: ignore[no-untyped-def]
    dyn = tuple(dataclasses.replace(c, config=dataclasses.replace(c.config, dynamic=True))
                if can_be_dynamic(c.config) else c for c in classes)
    return {"shipped": tuple(classes), "dyn": dyn}


def main() -> None:
    class_variants_main("dev_dynamic_tiles_check", PTS, variants, sys.argv[1:])


if __name__ == "__main__":
    main()
