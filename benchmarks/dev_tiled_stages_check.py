"""Does the ring depth decide what tiled weights gain (dev check on the H200, not a test)?

Tiled weights stream 3-6 % faster than plain ones in decode's swap tiles (12 stages) and 2-5 %
slower in the fitted 160-token swap tiles of T = 4096 (5 stages, all that fits). Here the same
swap tiles with fewer stages: decode tiles (8 tokens x 128 weight rows) with 12, 8 and 5 stages at
T = 16, and fitted tiles with 5 and 4 stages (160 tokens) and 6 and 5 (128 tokens) for every
expert at T = 4096, each GEMM alone on plain and tiled weights, three interleaved repeats of a
median of 10 replays, L2 read-flushed, bit-identical outputs required. If the tiled / plain ratio
rises as the stages fall, the fitted tiles lose for want of bytes in flight.

Run::

    PYTHONPATH=. python benchmarks/dev_tiled_stages_check.py [--points Model:T:routing,...]
"""
import argparse
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import compile_configs, layer_point, parse_points, save, time_interleaved

import staticbatch_moe as moe
from staticbatch_moe._gemm_config import _swap_config, fitted_config

POINTS = [("DeepSeek-V3", 16, "uniform"), ("Qwen3-235B-A22B", 16, "uniform"), ("DeepSeek-V3", 4096, "uniform"),
          ("GPT-OSS-120B", 4096, "uniform")]


def configs(t: int, up: bool) -> list[moe.GemmConfig]:
    act = "silu_and_mul" if up else None
    if t <= 128:
        base = _swap_config(8, 128, act, "bf16", up)
        return [dataclasses.replace(base, stages=s) for s in (12, 8, 5)]
    return [dataclasses.replace(fitted_config(bm, act, "bf16", up), stages=s) for bm, ss in ((160, (5, 4)), (128, (6, 5)))
            for s in ss]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", default="")
    args = ap.parse_args()
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("dev_tiled_stages_check needs a Hopper GPU")
        return 0
    points = parse_points(args.points, POINTS)
    cfgs = {dataclasses.replace(c, tiled_w=tw) for _, t, _ in points for up in (False, True) for c in configs(t, up)
            for tw in (False, True)}
    print(compile_configs(sorted(cfgs, key=lambda c: c.kernel_name)), flush=True)
    rows = []
    for model, t, kind in points:
        w1p, w2, x, plan = layer_point(model, t, kind)
        tiled = (moe.GateUpWeight(moe.pack_weight(w1p.packed)), moe.pack_weight(w2))
        h, i, _, _ = moe.MODEL_SHAPES[model]
        mid = torch.randn(plan.num_rows, i, device="cuda", dtype=torch.bfloat16)
        valid = int(plan.expert_starts[-1])
        for gemm in ("up", "down"):
            up = gemm == "up"
            calls, outs = {}, {}
            for cfg in configs(t, up):
                for tw, (a1, a2) in ((False, (w1p, w2)), (True, tiled)):
                    c = dataclasses.replace(cfg, tiled_w=tw)
                    out = torch.full((plan.num_rows, i if up else h), float("nan"), device="cuda",
                                     dtype=torch.bfloat16)

                    def fn(out=out, a1=a1, a2=a2, c=c, up=up, x=x, plan=plan, mid=mid) -> None:  # type: ignore[no-untyped-def]
                        if up:
                            moe.grouped_gemm(x, a1, plan, activation="silu_and_mul", out=out, config=c)
                        else:
                            moe.grouped_gemm(mid, a2, plan, gather=False, out=out, config=c)

                    fn()
                    torch.cuda.synchronize()
                    name = c.kernel_name.replace("sb_grouped_gemm_bf16_", "")
                    calls[name], outs[name] = fn, out
            first = next(iter(outs.values()))[:valid]
            same = {n: bool(torch.equal(o[:valid], first)) for n, o in outs.items()}
            ms = time_interleaved(calls, repeats=3, reps=10)
            med = {n: sorted(v)[1] for n, v in ms.items()}
            ratio = {n: round(med[n] / med[n[:-3]], 4) for n in med if n.endswith("_wt")}
            rows.append({"model": model, "T": t, "routing": kind, "gemm": gemm, "bit_identical": same,
                         "nan_free": not bool(first.isnan().any()), "ms": ms, "median_ms": med,
                         "tiled_over_plain": ratio})
            print(f"{model} T={t} {gemm}: " + " ".join(f"{n} {v:.4f}" for n, v in med.items() if not n.endswith("_wt"))
                  + f" | tiled/plain {ratio} all same {all(same.values())}", flush=True)
        del w1p, w2, x, plan, tiled, mid
        torch.cuda.empty_cache()
    save("dev_tiled_stages_check", rows, {"note": "each GEMM alone, swap tiles with fewer stages, plain and tiled "
                                          "weights; ms, three interleaved repeats"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
