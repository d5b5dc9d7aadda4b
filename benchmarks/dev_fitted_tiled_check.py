"""Fitted swap tiles of 144 against 160 tokens on tiled weights at T = 4096 (dev check on the
H200, not a test).

On tiled weights the 160-token fitted tiles lose 1-6 % to plain weights while the 128-token ones
are level (dev_tiled_stages_check.json). With plain weights 144 tokens measured level with 160
(USE_FITTED_WIDE). Here each GEMM alone at DeepSeek-V3 and GPT-OSS-120B T = 4096, tiled weights,
the heuristic's classes (128-row clusters above 160 rows, fitted 160-token tiles below) against
the same with the split at 144 and 144-token tiles, and the heuristic on plain weights (the
reference), three interleaved repeats of a median of 10 replays, L2 read-flushed, bit-identical
outputs required.

Run::

    PYTHONPATH=. python benchmarks/dev_fitted_tiled_check.py [--points Model:T:routing,...]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import layer_classes, layer_point, parse_points, save, time_interleaved

import staticbatch_moe as moe
from staticbatch_moe._gemm_config import TileClass, fitted_config

POINTS = [("DeepSeek-V3", 4096, "uniform"), ("GPT-OSS-120B", 4096, "uniform"), ("DeepSeek-V3", 4096, "skewed"),
          ("GPT-OSS-120B", 4096, "skewed")]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", default="")
    args = ap.parse_args()
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("dev_fitted_tiled_check needs a Hopper GPU")
        return 0
    rows = []
    for model, t, kind in parse_points(args.points, POINTS):
        w1p, w2, x, plan = layer_point(model, t, kind)
        tiled = (moe.GateUpWeight(moe.pack_weight(w1p.packed)), moe.pack_weight(w2))
        h, i, _, _ = moe.MODEL_SHAPES[model]
        mid = torch.randn(plan.num_rows, i, device="cuda", dtype=torch.bfloat16)
        valid = int(plan.expert_starts[-1])
        for gemm, cl in layer_classes(model, t, tiled_w=True).items():
            up = gemm == "up"
            hot = cl[0].config
            f144 = fitted_config(144, "silu_and_mul" if up else None, "bf16", up)
            variants = [("plain", (w1p, w2), None), ("tiled", tiled, tuple(cl)),
                        ("tiled_144", tiled, (TileClass(hot, 144, None), TileClass(f144, 0, 144)))]
            calls, outs = {}, {}
            for name, (a1, a2), classes in variants:
                out = torch.full((plan.num_rows, i if up else h), float("nan"), device="cuda", dtype=torch.bfloat16)

                def fn(out=out, a1=a1, a2=a2, classes=classes, up=up, x=x, plan=plan, mid=mid) -> None:  # type: ignore[no-untyped-def]
                    if up:
                        moe.grouped_gemm(x, a1, plan, activation="silu_and_mul", out=out, config=classes)
                    else:
                        moe.grouped_gemm(mid, a2, plan, gather=False, out=out, config=classes)

                fn()
                torch.cuda.synchronize()
                calls[name], outs[name] = fn, out
            ref = outs["plain"][:valid]
            same = {n: bool(torch.equal(o[:valid], ref)) for n, o in outs.items() if n != "plain"}
            ms = time_interleaved(calls, repeats=3, reps=10)
            med = {n: sorted(v)[1] for n, v in ms.items()}
            ratio = {n: round(v / med["plain"], 4) for n, v in med.items()}
            rows.append({"model": model, "T": t, "routing": kind, "gemm": gemm, "bit_identical": same,
                         "nan_free": not bool(ref.isnan().any()), "ms": ms, "median_ms": med, "over_plain": ratio})
            print(f"{model} T={t} {kind} {gemm}: plain {med['plain']:.4f} " +
                  " ".join(f"{n} {r:.3f}" for n, r in ratio.items() if n != "plain") +
                  f" all same {all(same.values())}", flush=True)
        del w1p, w2, x, plan, tiled, mid
        torch.cuda.empty_cache()
    save("dev_fitted_tiled_check", rows, {"note": "each GEMM alone: heuristic on plain weights, on tiled weights "
                                          "(fitted 160), and with fitted 144 below a 144-row split; ratios over plain"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
