"""Which tile class loses with tiled weights at T = 4096 (dev check on the H200, not a test).

bench_grouped_gemm at ``beeb3a0`` and both dev_tiled_cluster_check runs: GPT-OSS-120B and
DeepSeek-V3 at T = 4096 with uniform routing were 4-11 % slower per GEMM with tiled weights;
the heuristic runs three tile classes there (128 x 192 clusters, 64 x 192 ping-pong tiles,
fitted 160-token swap tiles). Here each GEMM of the layer runs with the heuristic's classes and
with each class's configuration alone for every expert (``config=``), plain weights against
tiled, three interleaved repeats of a median of 10 replays, L2 read-flushed; outputs must be
bit-identical between the layouts.

Run::

    PYTHONPATH=. python benchmarks/dev_tiled_class_check.py [--points Model:T:routing,...]
"""
import argparse
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import compile_configs, layer_classes, layer_point, parse_points, save, time_interleaved

import staticbatch_moe as moe

POINTS = [("GPT-OSS-120B", 4096, "uniform"), ("DeepSeek-V3", 4096, "uniform")]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", default="")
    args = ap.parse_args()
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("dev_tiled_class_check needs a Hopper GPU")
        return 0
    points = parse_points(args.points, POINTS)
    base = {c.config for m, t, _ in points for cls in layer_classes(m, t).values() for c in cls}
    print(compile_configs(sorted(base | {dataclasses.replace(c, tiled_w=True) for c in base},
                                 key=lambda c: c.kernel_name)), flush=True)
    rows = []
    for model, t, kind in points:
        w1p, w2, x, plan = layer_point(model, t, kind)
        weights = {"plain": (w1p, w2), "tiled": (moe.GateUpWeight(moe.pack_weight(w1p.packed)), moe.pack_weight(w2))}
        h, i, _, _ = moe.MODEL_SHAPES[model]
        mid = torch.randn(plan.num_rows, i, device="cuda", dtype=torch.bfloat16)
        for gemm, classes in layer_classes(model, t).items():
            for label, config in [("heuristic", None)] + [(c.config.kernel_name, c.config) for c in classes]:
                calls, outs = {}, {}
                for name, (a1, a2) in weights.items():
                    out = torch.full((plan.num_rows, i if gemm == "up" else h), float("nan"), device="cuda",
                                     dtype=torch.bfloat16)
                    cfg = None if config is None else dataclasses.replace(config, tiled_w=name == "tiled")

                    def fn(out=out, a1=a1, a2=a2, cfg=cfg, gemm=gemm, x=x, plan=plan, mid=mid) -> None:  # type: ignore[no-untyped-def]
                        if gemm == "up":
                            moe.grouped_gemm(x, a1, plan, activation="silu_and_mul", out=out, config=cfg)
                        else:
                            moe.grouped_gemm(mid, a2, plan, gather=False, out=out, config=cfg)

                    fn()
                    torch.cuda.synchronize()
                    calls[name], outs[name] = fn, out
                valid = int(plan.expert_starts[-1])
                same = bool(torch.equal(outs["plain"][:valid], outs["tiled"][:valid]))
                ms = time_interleaved(calls, repeats=3, reps=10)
                med = {n: sorted(v)[1] for n, v in ms.items()}
                rows.append({"model": model, "T": t, "routing": kind, "gemm": gemm, "tiles": label,
                             "bit_identical": same, "ms": ms, "median_ms": med,
                             "tiled_over_plain": med["tiled"] / med["plain"]})
                print(f"{model} T={t} {kind} {gemm} {label}: plain {med['plain']:.4f} tiled {med['tiled']:.4f} "
                      f"({med['tiled'] / med['plain']:.3f}) same {same}", flush=True)
        del w1p, w2, x, plan, weights, mid
        torch.cuda.empty_cache()
    save("dev_tiled_class_check", rows, {"note": "each GEMM with the heuristic's classes and with each class's "
                                         "configuration alone; plain against tiled weights; ms, three repeats"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
