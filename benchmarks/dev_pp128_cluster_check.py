"""128 x 192 ping-pong tiles in 2-CTA clusters for the 128-row classes (dev check on the H200, not
a test).

dev_power_check.json / _ncu.txt: at a locked clock the 128 x 192 ping-pong tile in a cluster kept
the tensor pipe busier than the heuristic's cooperative 128 x 256 (or 192) tile with store warps
at every T = 16384 GEMM measured (DeepSeek-V3 down 92 % against 83 %), and under the power cap
it was faster where K is short (DeepSeek-V3 down K = 2048 7.03 -> 6.67 ms, GPT-OSS-120B K = 2880
4.03 -> 3.92 and 1.97 -> 1.91) and slower where it is long (Mixtral-8x7B down K = 14336 5.87 ->
6.01). This times each GEMM of the layer with the heuristic's tile classes (``shipped``), with
every 128-row cooperative class replaced by that tile (``pp192``), and, for classes with store
warps, by the same tile without them (``nosw``: the consumers store, the ring one stage deeper
where it fits), at the points whose classes have 128-row tiles. Outputs NaN-poisoned and
compared bit for bit. Five interleaved repeats of a median of 10 replays, L2 read-flushed.
Result: benchmarks/results/dev_pp128_cluster_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_pp128_cluster_check.py [MODEL:T:ROUTING ...]
"""
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import class_variants_main

from staticbatch_moe._gemm_config import _normal_config, without_store_warps

PTS = [(m, 16384, "uniform") for m in ("Mixtral-8x7B", "Qwen3-30B-A3B", "DeepSeek-V3", "Qwen3-235B-A22B",
                                       "GPT-OSS-120B")]
PTS += [("Mixtral-8x7B", 4096, "uniform")]
PTS += [(m, 4096, "skewed") for m in ("DeepSeek-V3", "GPT-OSS-120B", "Qwen3-235B-A22B")]


def cooperative128(c) -> bool:  # type: ignore[no-untyped-def]
    return not c.swap_ab and not c.pingpong and c.block_m == 128


def pp192(c):  # type: ignore[no-untyped-def]
    cfg = _normal_config(128, min(c.block_n, 192), True, c.activation, c.dtype, c.gather)
    return dataclasses.replace(cfg, gather_mode=c.gather_mode, cluster=2)


def variants(classes) -> dict:  # type: ignore[no-untyped-def]
    out = {"shipped": tuple(classes)}
    out["pp192"] = tuple(dataclasses.replace(c, config=pp192(c.config)) if cooperative128(c.config) else c
                         for c in classes)
    if any(cooperative128(c.config) and c.config.store_warps for c in classes):
        out["nosw"] = tuple(dataclasses.replace(c, config=without_store_warps(c.config))
                            if cooperative128(c.config) and c.config.store_warps else c for c in classes)
    return out


def main() -> None:
    class_variants_main("dev_pp128_cluster_check", PTS, variants, sys.argv[1:])


if __name__ == "__main__":
    main()
