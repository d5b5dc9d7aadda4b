"""One token box per stage for 128-row ping-pong and tall tiles (dev check on the H200, not a test).

A 128-row ping-pong tile (and a 256-row tall one) loads its token rows in 64-row boxes, one per
64-row slice that holds rows of the task, so that a partial tile does not read its dead slice.
Fewer copies per stage made fitted tiles faster (dev_fitted_box_check.json). Here one box of the
whole tile per stage (temporary macro ``SB_SLICE_X_BOX_WHOLE`` and
``_gemm_config.SLICE_X_BOX_WHOLE`` for the tensor map): a partial tile then reads rows past its
task (the next task's, or zeros), which no wgmma reads. Each GEMM alone with the heuristic's
classes on tiled and plain weights, five interleaved repeats of a median of 10 replays, L2
read-flushed, bit-identical outputs required.

Run::

    PYTHONPATH=. python benchmarks/dev_slice_box_check.py [--points Model:T:routing,...]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import compile_configs, layer_classes, parse_points, print_ratios, save, time_gemm_variants

from staticbatch_moe import _gemm_config as cfgmod
from staticbatch_moe import gemm as gemm_mod

POINTS = [("Qwen3-30B-A3B", 4096, "uniform"), ("Qwen3-235B-A22B", 4096, "uniform"), ("Mixtral-8x7B", 4096, "uniform"),
          ("GPT-OSS-120B", 16384, "uniform"), ("Qwen3-30B-A3B", 16384, "uniform"), ("DeepSeek-V3", 16384, "uniform")]
_KERNELS: dict[bool, dict] = {False: {}, True: {}}


def use(whole: bool) -> None:
    os.environ["STATICBATCH_NVRTC_OPTIONS"] = f"-DSB_SLICE_X_BOX_WHOLE={int(whole)}"
    cfgmod.SLICE_X_BOX_WHOLE = whole
    gemm_mod._kernels = _KERNELS[whole]


def variants(model: str, t: int, gemm: str, plain, tiled) -> dict:  # type: ignore[no-untyped-def]
    return {f"{layout}_{'whole' if whole else 'slices'}": (w, None, lambda whole=whole: use(whole))
            for layout, w in (("tiled", tiled), ("plain", plain)) for whole in (False, True)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", default="")
    args = ap.parse_args()
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("dev_slice_box_check needs a Hopper GPU")
        return 0
    points = parse_points(args.points, POINTS)
    cfgs = {c.config for m, t, _ in points for tw in (False, True) for cl in layer_classes(m, t, tiled_w=tw).values()
            for c in cl}
    try:
        for whole in (False, True):
            use(whole)
            compile_configs(sorted(cfgs, key=lambda c: c.kernel_name))
        rows = time_gemm_variants(points, variants, repeats=5)
    finally:
        use(False)
    for row in rows:
        med = row["median_ms"]
        row["whole_over_slices"] = {lay: round(med[f"{lay}_whole"] / med[f"{lay}_slices"], 4) for lay in ("tiled", "plain")}
        print_ratios(row, row["whole_over_slices"], f"tiled {med['tiled_slices']:.4f} plain {med['plain_slices']:.4f} ")
    save("dev_slice_box_check", rows, {"note": "each GEMM alone, the heuristic's classes, token boxes of one 64-row "
                                       "slice or of the whole tile; ms, five interleaved repeats"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
