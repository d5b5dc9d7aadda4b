"""The in-loop gathers against the staged copy for the 128 x 192 ping-pong tiles of gate/up GEMMs
(dev check on the H200, not a test).

The sixteenth session measured the staged copy at 15-17 % of Qwen3-30B-A3B's gate/up GEMM at T =
4096 and 16384 (H = 2048 and N = 1536: the least compute per staged byte of the five models; it
writes 134 MB at T = 4096 and 537 MB at T = 16384 and reads them back), against 2-4 % elsewhere.
The in-loop gathers read the token rows where they are (at T = 4096 the 17 MB input stays in the
L2) but need the producer's warps, so they run without a 2-CTA cluster. Variants of the
heuristic's gate/up tile (128 x 192 ping-pong, staged, cluster):

- ``stg_c1``: the staged copy without the cluster (what the cluster is worth here);
- ``cpa``: the cp.async gather (all 128 producer threads), no cluster;
- ``tma``: one TMA per token row, no cluster.

The down GEMM runs the heuristic only. Each GEMM alone on tiled weights, five interleaved repeats
of a median of 10 replays, L2 read-flushed, bit-identical outputs required. Result:
benchmarks/results/dev_loop_gather_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_loop_gather_check.py [--points Model:T:routing,...]
"""
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import heuristic_variants_main, layer_classes

POINTS = [("Qwen3-30B-A3B", 4096, "uniform"), ("Qwen3-30B-A3B", 16384, "uniform"), ("Qwen3-30B-A3B", 4096, "skewed"),
          ("Qwen3-235B-A22B", 4096, "uniform"), ("GPT-OSS-120B", 16384, "uniform")]


def up_variants(model: str, t: int) -> dict:
    """The variants of the gate/up GEMM's single staged class (empty where it has several)."""
    classes = layer_classes(model, t, tiled_w=True)["up"]
    if len(classes) != 1 or classes[0].config.gather_mode != "staged":
        return {}
    cfg = classes[0].config
    c1 = dataclasses.replace(cfg, cluster=1)
    return {"stg_c1": c1, "cpa": c1.with_gather_mode("cp_async"), "tma": c1.with_gather_mode("tma")}


def variants(model: str, t: int, gemm: str, plain, tiled) -> dict:  # type: ignore[no-untyped-def]
    out = {"heuristic": (tiled, None, None)}
    if gemm == "up":
        out.update({name: (tiled, cfg, None) for name, cfg in up_variants(model, t).items()})
    return out


def main() -> int:
    cfgs = [c for m, t, _ in POINTS for c in up_variants(m, t).values()]
    return heuristic_variants_main("dev_loop_gather_check", POINTS, variants, cfgs,
                                   "gate/up alone, tiled weights: the heuristic's staged 128 x 192 ping-pong cluster "
                                   "tile, the same staged without the cluster (stg_c1), with the cp.async gather (cpa) "
                                   "and the TMA gather (tma), both without the cluster; ms, five interleaved repeats")


if __name__ == "__main__":
    sys.exit(main())
