"""How a stage's copies are issued, and what tiled weights lose in fitted tiles (dev check on the
H200, not a test).

Fitted 160-token swap tiles run 2-6 % slower on tiled weights than on plain ones at DeepSeek-V3
and GPT-OSS-120B T = 4096 (nineteenth session), where decode's swap tiles gain 3-6 %. A tiled
weight stage is two 8 KB bulk copies (one per 64-row block) where the plain one is one tensor-map
box of 128 rows; the stage's token rows (20 KB, 10 boxes of 16 rows) follow it. Two temporary
macros of the kernel change how the producer issues a stage:

- ``SB_TILED_PIECE_ROWS=32``: tiled blocks copied in 32-row pieces (four 4 KB bulk copies);
- ``SB_X_FIRST=1``: the token boxes issued before the weight (without in-loop gather).

Each GEMM alone with the fitted 160-token tile for every expert and with the heuristic's classes,
on plain and tiled weights, under each macro, three interleaved repeats of a median of 10
replays, L2 read-flushed, bit-identical outputs required.

Run::

    PYTHONPATH=. python benchmarks/dev_tiled_issue_order_check.py [--points Model:T:routing,...]
"""
import argparse
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import compile_configs, layer_classes, parse_points, print_ratios, save, time_gemm_variants

from staticbatch_moe import gemm as gemm_mod
from staticbatch_moe._gemm_config import fitted_config

POINTS = [("DeepSeek-V3", 4096, "uniform"), ("GPT-OSS-120B", 4096, "uniform"), ("DeepSeek-V3", 16, "uniform"),
          ("Qwen3-30B-A3B", 1, "uniform")]
OPTIONS = {"base": "", "p32": "-DSB_TILED_PIECE_ROWS=32", "xfirst": "-DSB_X_FIRST=1"}
_KERNELS: dict[str, dict] = {name: {} for name in OPTIONS}


def use(opt: str) -> None:
    """Compile and launch the next kernels under macro set ``opt``."""
    os.environ["STATICBATCH_NVRTC_OPTIONS"] = OPTIONS[opt]
    gemm_mod._kernels = _KERNELS[opt]


def fitted(up: bool, tiled: bool):  # type: ignore[no-untyped-def]
    act = "silu_and_mul" if up else None
    return dataclasses.replace(fitted_config(160, act, "bf16", up), tiled_w=tiled)


def variants(model: str, t: int, gemm: str, plain, tiled) -> dict:  # type: ignore[no-untyped-def]
    """plain / tiled weights x fitted tiles (T >= 1024) or the heuristic, under each macro set
    (plain weights only under the base set and x-first: the piece size is a tiled-weight matter)."""
    up = gemm == "up"
    out = {}
    for cfg_name in (("fit", "heur") if t >= 1024 else ("heur",)):
        for layout, w in (("plain", plain), ("tiled", tiled)):
            cfg = fitted(up, layout == "tiled") if cfg_name == "fit" else None
            for opt in OPTIONS:
                if layout == "plain" and opt == "p32":
                    continue
                out[f"{layout}_{cfg_name}_{opt}"] = (w, cfg, lambda opt=opt: use(opt))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", default="")
    args = ap.parse_args()
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("dev_tiled_issue_order_check needs a Hopper GPU")
        return 0
    points = parse_points(args.points, POINTS)
    cfgs = {fitted(up, tw) for up in (False, True) for tw in (False, True)}
    cfgs |= {c.config for m, t, _ in points for tw in (False, True) for cl in layer_classes(m, t, tiled_w=tw).values()
             for c in cl}
    try:
        for opt in OPTIONS:
            use(opt)
            compile_configs(sorted(cfgs, key=lambda c: c.kernel_name))
        rows = time_gemm_variants(points, variants, repeats=3)
    finally:
        use("base")
    for row in rows:
        med = row["median_ms"]
        row["over_base"] = {n: round(v / med[n.rsplit("_", 1)[0] + "_base"], 4) for n, v in med.items()
                            if not n.endswith("_base")}
        row["tiled_over_plain"] = {c: round(med[f"tiled_{c}_base"] / med[f"plain_{c}_base"], 4)
                                   for c in ("fit", "heur") if f"plain_{c}_base" in med}
        print_ratios(row, {**row["over_base"], **{f"tiled/plain {c}": r for c, r in row["tiled_over_plain"].items()}},
                     " ".join(f"{n} {v:.4f}" for n, v in med.items() if n.endswith("_base")) + " | ")
    save("dev_tiled_issue_order_check", rows, {"note": "each GEMM alone, fitted 160-token tiles for every expert "
                                               "(T >= 1024) and the heuristic, plain and tiled weights, under the "
                                               "macros SB_TILED_PIECE_ROWS=32 and SB_X_FIRST=1; ms, three "
                                               "interleaved repeats"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
