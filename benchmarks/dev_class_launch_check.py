"""The heuristic's three tile classes at T = 4096 on plain and tiled weights, with and without
programmatic launches of the later classes (dev check on the H200, not a test).

At DeepSeek-V3 and GPT-OSS-120B at T = 4096 (about 128 rows per expert: a 128-row cluster class,
a 64-row ping-pong class and fitted 160-token swap tiles) tiled weights lose 3-5 % to plain ones
in bench_grouped_gemm, more than any class alone lost (dev_tiled_class_check.json). Here each
GEMM alone: the heuristic's launches (the fitted and clustered classes as programmatic
dependents), the same with no programmatic launch (``programmatic_pays`` patched to False), and
on tiled weights two classes (128-row clusters above 160 rows, fitted tiles below), three
interleaved repeats of a median of 10 replays, L2 read-flushed, bit-identical outputs required.

Run::

    PYTHONPATH=. python benchmarks/dev_class_launch_check.py [--points Model:T:routing,...]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import layer_classes, layer_point, parse_points, save, time_interleaved

import staticbatch_moe as moe
from staticbatch_moe import _gemm_config as cfgmod

POINTS = [("DeepSeek-V3", 4096, "uniform"), ("GPT-OSS-120B", 4096, "uniform"), ("DeepSeek-V3", 4096, "skewed"),
          ("GPT-OSS-120B", 4096, "skewed")]
PAYS = cfgmod.programmatic_pays


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", default="")
    args = ap.parse_args()
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("dev_class_launch_check needs a Hopper GPU")
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
            hot, fitted = cl[0], cl[-1]
            two = (cfgmod.TileClass(hot.config, fitted.max_rows, None), fitted)
            variants = [("plain", (w1p, w2), None, True), ("plain_noprog", (w1p, w2), None, False),
                        ("tiled", tiled, None, True), ("tiled_noprog", tiled, None, False),
                        ("tiled_two", tiled, two, True)]
            calls, outs = {}, {}
            for name, (a1, a2), classes, prog in variants:
                out = torch.full((plan.num_rows, i if up else h), float("nan"), device="cuda", dtype=torch.bfloat16)

                def fn(out=out, a1=a1, a2=a2, classes=classes, prog=prog, up=up, x=x, plan=plan, mid=mid) -> None:  # type: ignore[no-untyped-def]
                    cfgmod.programmatic_pays = PAYS if prog else (lambda cfg: False)
                    if up:
                        moe.grouped_gemm(x, a1, plan, activation="silu_and_mul", out=out, config=classes)
                    else:
                        moe.grouped_gemm(mid, a2, plan, gather=False, out=out, config=classes)
                    cfgmod.programmatic_pays = PAYS

                fn()
                torch.cuda.synchronize()
                calls[name], outs[name] = fn, out
            ref = outs["plain"][:valid]
            same = {n: bool(torch.equal(o[:valid], ref)) for n, o in outs.items() if n != "plain"}
            ms = time_interleaved(calls, repeats=3, reps=10)
            med = {n: sorted(v)[1] for n, v in ms.items()}
            ratio = {n: round(v / med["plain"], 4) for n, v in med.items()}
            rows.append({"model": model, "T": t, "routing": kind, "gemm": gemm, "bit_identical": same,
                         "nan_free": not bool(ref.isnan().any()), "ms": ms, "median_ms": med, "over_plain": ratio,
                         "classes": [f"{c.config.kernel_name}:{c.min_rows}-{c.max_rows}" for c in cl]})
            print(f"{model} T={t} {kind} {gemm}: plain {med['plain']:.4f} " +
                  " ".join(f"{n} {r:.3f}" for n, r in ratio.items() if n != "plain") +
                  f" all same {all(same.values())}", flush=True)
        del w1p, w2, x, plan, tiled, mid
        torch.cuda.empty_cache()
    save("dev_class_launch_check", rows, {"note": "each GEMM alone: the heuristic's classes on plain and tiled "
                                          "weights with and without programmatic launches, and two classes on "
                                          "tiled weights; ratios over plain"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
