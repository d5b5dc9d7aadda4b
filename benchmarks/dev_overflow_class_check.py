"""A tile class for the experts just past a whole number of 128-row tiles (dev check on the H200,
not a test).

With uniform routing an expert's rows scatter around the mean by about its square root. Where the
mean is a multiple of 128 (Qwen3-30B-A3B and Qwen3-235B-A22B at T = 4096: 256 rows, Mixtral-8x7B
at T = 1024: 256, Qwen3-30B-A3B at T = 16384: 1024) about half the experts have a few rows more
than the mean, and the 128 x 192 ping-pong tiles give each of them one more tile for those rows: a
ping-pong tile runs its whole wgmma chain and streams its whole weight block whatever its live
rows, so those experts cost a third (or a ninth) more than the others. Here the experts up to the
boundary ``b`` (the mean rounded to 128) keep the heuristic's 128 x 192 ping-pong clusters
(exactly b / 128 tiles each, so every cluster pair shares a task and an n-block) and those past it
get another tile:

- ``fit``: fitted swap tiles of up to 160 tokens (the rows split evenly, wgmma N rounded to 16);
- ``coop``: cooperative 128 x 192 tiles in clusters, whose dead 64-row half skips its wgmma;
- ``triple``: 192-row cooperative tiles in clusters (three groups, dead ones skipped).

Each GEMM alone on tiled weights, against the heuristic's classes (and, at Mixtral-8x7B, also the
128 x 192 ping-pong clusters for every expert), five interleaved repeats of a median of 10
replays, L2 read-flushed, bit-identical outputs required.

Run::

    PYTHONPATH=. python benchmarks/dev_overflow_class_check.py [--points Model:T:routing,...]
"""
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import heuristic_variants_main, normal_candidate

import staticbatch_moe as moe
from staticbatch_moe._gemm_config import TileClass, fitted_config, triple_config

POINTS = [("Qwen3-30B-A3B", 4096, "uniform"), ("Qwen3-235B-A22B", 4096, "uniform"), ("Mixtral-8x7B", 1024, "uniform"),
          ("Qwen3-30B-A3B", 16384, "uniform"), ("Qwen3-30B-A3B", 4096, "skewed")]


def boundary(model: str, t: int) -> int:
    """The mean rows per expert rounded to a multiple of 128 (at least 128)."""
    _, _, e, k = moe.MODEL_SHAPES[model]
    return max(128, round(t * k / e / 128) * 128)


def over_configs(up: bool) -> dict[str, moe.GemmConfig]:
    """The tile of each variant for the experts past the boundary, on tiled weights."""
    act = "silu_and_mul" if up else None
    fit = fitted_config(160, act, "bf16", up)
    return {"fit": dataclasses.replace(fit, tiled_w=True),
            "coop": normal_candidate(128, 192, False, 2, up, tiled=True),
            "triple": dataclasses.replace(triple_config(192, act, "bf16", up), tiled_w=True)}


def variants(model: str, t: int, gemm: str, plain, tiled) -> dict:  # type: ignore[no-untyped-def]
    """The heuristic, and the 128 x 192 ping-pong clusters up to the boundary with each tile past it."""
    up = gemm == "up"
    pp = normal_candidate(128, 192, True, 2, up, tiled=True)
    b = boundary(model, t)
    out = {"heuristic": (tiled, None, None)}
    if model == "Mixtral-8x7B":
        out["pp_all"] = (tiled, pp, None)
    for name, cfg in over_configs(up).items():
        out[name] = (tiled, (TileClass(cfg, b, None), TileClass(pp, 0, b)), None)
    return out


def main() -> int:
    cfgs = [normal_candidate(128, 192, True, 2, up, tiled=True) for up in (False, True)]
    cfgs += [c for up in (False, True) for c in over_configs(up).values()]
    return heuristic_variants_main("dev_overflow_class_check", POINTS, variants, cfgs,
                                   "each GEMM alone, tiled weights: 128 x 192 ping-pong clusters up to the boundary "
                                   "(the mean rows per expert rounded to 128), fitted / cooperative 128 x 192 / "
                                   "192-row tiles past it; ms, five interleaved repeats")


if __name__ == "__main__":
    sys.exit(main())
