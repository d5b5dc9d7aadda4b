"""Fewer, taller token boxes in fitted tiles (dev check on the H200, not a test).

A fitted swap tile loads its stage's token rows in boxes of 16 rows (one wgmma N step), so that
rows past the tile's own are not read: up to 10 TMA boxes per stage for 160 tokens, beside the
weight's one tensor-map box (plain) or two bulk copies (tiled). dev_tiled_issue_order_check.json
found the tiled weight's stage slower the more copies it takes (32-row pieces: +4-15 %). Here the
token box grows to 32, 80 or 160 rows (temporary macro ``SB_FITTED_X_BOX_ROWS`` and
``_gemm_config.FITTED_X_BOX_ROWS`` for the tensor map): at most 5, 2 or 1 boxes per stage, the last
box reading rows past the tile's (the next expert's, or zeros past the end), which the wgmma does
not use. Each GEMM alone, the fitted 160-token tile for every expert and the heuristic's classes,
plain and tiled weights, five interleaved repeats of a median of 10 replays, L2 read-flushed,
bit-identical outputs required.

Run::

    PYTHONPATH=. python benchmarks/dev_fitted_box_check.py [--points Model:T:routing,...]
"""
import argparse
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import compile_configs, layer_classes, parse_points, print_ratios, save, time_gemm_variants

from staticbatch_moe import _gemm_config as cfgmod
from staticbatch_moe import gemm as gemm_mod

POINTS = [("DeepSeek-V3", 4096, "uniform"), ("GPT-OSS-120B", 4096, "uniform"), ("DeepSeek-V3", 4096, "skewed")]
BOXES = (16, 32, 80, 160)
_KERNELS: dict[int, dict] = {r: {} for r in BOXES}


def use(rows: int) -> None:
    """Compile and launch the next fitted kernels with token boxes of ``rows`` rows."""
    os.environ["STATICBATCH_NVRTC_OPTIONS"] = f"-DSB_FITTED_X_BOX_ROWS={rows}"
    cfgmod.FITTED_X_BOX_ROWS = rows
    gemm_mod._kernels = _KERNELS[rows]


def fitted(up: bool, tiled: bool):  # type: ignore[no-untyped-def]
    act = "silu_and_mul" if up else None
    return dataclasses.replace(cfgmod.fitted_config(160, act, "bf16", up), tiled_w=tiled)


def variants(model: str, t: int, gemm: str, plain, tiled) -> dict:  # type: ignore[no-untyped-def]
    up = gemm == "up"
    out = {}
    for cfg_name in ("fit", "heur"):
        for layout, w in (("plain", plain), ("tiled", tiled)):
            cfg = fitted(up, layout == "tiled") if cfg_name == "fit" else None
            for r in BOXES:
                out[f"{layout}_{cfg_name}_{r}"] = (w, cfg, lambda r=r: use(r))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", default="")
    args = ap.parse_args()
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("dev_fitted_box_check needs a Hopper GPU")
        return 0
    points = parse_points(args.points, POINTS)
    cfgs = {fitted(up, tw) for up in (False, True) for tw in (False, True)}
    cfgs |= {c.config for m, t, _ in points for tw in (False, True) for cl in layer_classes(m, t, tiled_w=tw).values()
             for c in cl}
    try:
        for r in BOXES:
            use(r)
            compile_configs(sorted(cfgs, key=lambda c: c.kernel_name))
        rows = time_gemm_variants(points, variants, repeats=5)
    finally:
        use(16)
    for row in rows:
        med = row["median_ms"]
        row["over_16"] = {n: round(v / med[n.rsplit("_", 1)[0] + "_16"], 4) for n, v in med.items()
                          if not n.endswith("_16")}
        row["tiled_over_plain"] = {f"{c}_{r}": round(med[f"tiled_{c}_{r}"] / med[f"plain_{c}_16"], 4)
                                   for c in ("fit", "heur") for r in BOXES}
        print_ratios(row, {**row["over_16"], **{f"t/p16 {n}": v for n, v in row["tiled_over_plain"].items()}},
                     " ".join(f"{n} {v:.4f}" for n, v in med.items() if n.endswith("_16")) + " | ")
    save("dev_fitted_box_check", rows, {"note": "each GEMM alone, fitted 160-token tiles for every expert and the "
                                        "heuristic, plain and tiled weights, token boxes of 16/32/80/160 rows; ms, "
                                        "five interleaved repeats"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
