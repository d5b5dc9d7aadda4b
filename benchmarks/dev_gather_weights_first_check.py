"""Weight loads before the gather indices in gathered tiles (dev check on the H200, not a test).

A gathered tile (cp.async gather: decode's swap tiles) reads the gather index of each of its
token rows before its first stage, a dependent trip to memory after the plan's own. The producer
issued each stage's weight load and then that stage's row copies, so the second stage's weight
load waited for the indices. With ``SB_GATHER_WEIGHTS_FIRST`` (the default) the loading threads
map their first tiles and thread 0 issues the weight loads of the first ``kStages`` stages
before any index is read, as the down GEMM (no gather) already did. Here the gate/up GEMM alone
(gathered, SiLU fused, tiled weights, the heuristic's classes) compiled with the macro at 1 and 0,
five interleaved repeats of a median of 10 replays, L2 read-flushed, bit-identical outputs
required. The down GEMM does not gather and is not timed.

Run::

    PYTHONPATH=. python benchmarks/dev_gather_weights_first_check.py [--points Model:T:routing,...]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import compile_configs, layer_classes, parse_points, print_ratios, save, time_gemm_variants

from staticbatch_moe import gemm as gemm_mod

MODELS = ("Qwen3-30B-A3B", "GPT-OSS-120B", "Qwen3-235B-A22B", "Mixtral-8x7B", "DeepSeek-V3")
POINTS = ([(m, t, "uniform") for t in (1, 16, 128) for m in MODELS]
          + [("DeepSeek-V3", 1024, "uniform"), ("GPT-OSS-120B", 1024, "uniform")])
OPTIONS = {"first": "", "after": "-DSB_GATHER_WEIGHTS_FIRST=0"}
_KERNELS: dict[str, dict] = {name: {} for name in OPTIONS}


def use(name: str) -> None:
    """Compile and launch the next kernels with variant ``name``'s macro."""
    os.environ["STATICBATCH_NVRTC_OPTIONS"] = OPTIONS[name]
    gemm_mod._kernels = _KERNELS[name]


def variants(model: str, t: int, gemm: str, plain, tiled) -> dict:  # type: ignore[no-untyped-def]
    """Both macro values on the gate/up GEMM's tiled weight (the heuristic's tiles); none for down."""
    if gemm != "up":
        return {}
    return {name: (tiled, None, lambda name=name: use(name)) for name in OPTIONS}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", default="")
    args = ap.parse_args()
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("dev_gather_weights_first_check needs a Hopper GPU")
        return 0
    points = parse_points(args.points, POINTS)
    cfgs = sorted({c.config for m, t, _ in points for c in layer_classes(m, t, tiled_w=True)["up"]},
                  key=lambda c: c.kernel_name)
    try:
        for name in OPTIONS:
            use(name)
            print(name, compile_configs(cfgs), flush=True)
        rows = [r for r in time_gemm_variants(points, variants, repeats=5) if r["gemm"] == "up"]
    finally:
        use("first")
    for row in rows:
        med = row["median_ms"]
        row["first_over_after"] = round(med["first"] / med["after"], 4)
        print_ratios(row, {"first/after": row["first_over_after"]}, f"after {med['after'] * 1e3:.1f} us ")
    save("dev_gather_weights_first_check", rows, {"note": "gate/up GEMM alone (gathered, SiLU, tiled weights, the "
                                                  "heuristic's classes), weight loads before (first) or after "
                                                  "(after) the gather indices; ms, five interleaved repeats"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
