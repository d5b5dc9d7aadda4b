"""Where 128-row clustered tiles should take over from 64-row ping-pong tiles with tiled weights
(dev check on the H200, not a test).

dev_t4096_tiled_candidates_check.json found 128 x 192 ping-pong clusters for every expert 7 %
faster than the heuristic's classes at Qwen3-235B T = 4096 gate/up with tiled weights (the
heuristic gives 128-row tiles only to experts of more than PINGPONG_MAX_ROWS = 320 rows, and none
at all below HOT_TALL_MIN_WEIGHT, e.g. Qwen3-30B). Here each GEMM of the layer, on tiled weights,
runs with the heuristic's classes and with the 128-row class moved down to experts of more than
192 or 128 rows, or given every expert; every variant passed as explicit classes (so all launch
alike), outputs compared bit for bit with the heuristic's on plain weights, three interleaved
repeats of a median of 10 replays, L2 read-flushed.

Run::

    PYTHONPATH=. python benchmarks/dev_tiled_rule_check.py [--points Model:T:routing,...]
"""
import argparse
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import compile_configs, layer_classes, layer_point, parse_points, save, time_interleaved

import staticbatch_moe as moe
from staticbatch_moe._gemm_config import TileClass, _prefill_config

POINTS = [("Qwen3-30B-A3B", 2048, "uniform"), ("Qwen3-30B-A3B", 4096, "uniform"), ("Qwen3-30B-A3B", 4096, "skewed"),
          ("Qwen3-235B-A22B", 2048, "uniform"),
          ("Qwen3-235B-A22B", 4096, "uniform"), ("Qwen3-235B-A22B", 4096, "skewed"),
          ("Mixtral-8x7B", 1024, "uniform"), ("Mixtral-8x7B", 1024, "skewed"),
          ("GPT-OSS-120B", 4096, "uniform"), ("DeepSeek-V3", 4096, "uniform")]


def variants(classes: tuple, up: bool, k: int) -> dict[str, tuple]:
    """The heuristic's classes and the 128-row class moved down (``>192``, ``>128``) or given
    every expert (``all128``), where the heuristic has a 64-row ping-pong class."""
    out = {"heuristic": tuple(classes)}
    mid = [c for c in classes if c.config.block_m == 64 and not c.config.swap_ab]
    if not mid:
        return out
    base = mid[0]
    hot = next((c.config for c in classes if c.config.block_m == 128 and not c.config.swap_ab), None)
    if hot is None:
        hot = _prefill_config(128, base.config.block_n, "silu_and_mul" if up else None, "bf16", up, k)
    low = [c for c in classes if c.max_rows is not None and c.max_rows <= base.min_rows]
    lo = max((c.max_rows for c in low), default=0)
    for th in (192, 128):
        if th > lo:
            out[f">{th}"] = (TileClass(hot, th, None), TileClass(base.config, lo, th), *low)
    out["all128"] = (TileClass(hot),)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", default="")
    args = ap.parse_args()
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("dev_tiled_rule_check needs a Hopper GPU")
        return 0
    points = parse_points(args.points, POINTS)
    shapes = {m: moe.MODEL_SHAPES[m] for m, _, _ in points}
    cfgs = set()
    for m, t, _ in points:
        h, i, _, _ = shapes[m]
        for gemm, cl in layer_classes(m, t).items():
            for v in variants(cl, gemm == "up", h if gemm == "up" else i).values():
                for c in v:
                    cfgs |= {c.config, dataclasses.replace(c.config, tiled_w=True)}
    print(compile_configs(sorted(cfgs, key=lambda c: c.kernel_name)), flush=True)
    rows = []
    for model, t, kind in points:
        w1p, w2, x, plan = layer_point(model, t, kind)
        tiled = (moe.GateUpWeight(moe.pack_weight(w1p.packed)), moe.pack_weight(w2))
        h, i, _, _ = shapes[model]
        mid = torch.randn(plan.num_rows, i, device="cuda", dtype=torch.bfloat16)
        valid = int(plan.expert_starts[-1])
        for gemm, cl in layer_classes(model, t).items():
            up = gemm == "up"
            vs = variants(cl, up, h if up else i)
            calls, outs = {}, {}
            todo = [("heuristic_plain", (w1p, w2), vs["heuristic"])] + [(n, tiled, c) for n, c in vs.items()]
            for name, (a1, a2), classes in todo:
                out = torch.full((plan.num_rows, i if up else h), float("nan"), device="cuda", dtype=torch.bfloat16)

                def fn(out=out, a1=a1, a2=a2, classes=classes, up=up, x=x, plan=plan, mid=mid) -> None:  # type: ignore[no-untyped-def]
                    if up:
                        moe.grouped_gemm(x, a1, plan, activation="silu_and_mul", out=out, config=classes)
                    else:
                        moe.grouped_gemm(mid, a2, plan, gather=False, out=out, config=classes)

                fn()
                torch.cuda.synchronize()
                calls[name], outs[name] = fn, out
            ref = outs["heuristic_plain"][:valid]
            same = {n: bool(torch.equal(o[:valid], ref)) for n, o in outs.items()}
            ms = time_interleaved(calls, repeats=3, reps=10)
            med = {n: sorted(v)[1] for n, v in ms.items()}
            ratio = {n: round(v / med["heuristic"], 4) for n, v in med.items()}
            rows.append({"model": model, "T": t, "routing": kind, "gemm": gemm, "nan_free": not bool(ref.isnan().any()),
                         "bit_identical": same, "ms": ms, "median_ms": med, "over_heuristic_tiled": ratio,
                         "kernels": {n: [f"{c.config.kernel_name}:{c.min_rows}-{c.max_rows}" for c in v]
                                     for n, v in vs.items()}})
            print(f"{model} T={t} {kind} {gemm}: heuristic tiled {med['heuristic']:.4f} ms " +
                  " ".join(f"{n} {r:.3f}" for n, r in ratio.items() if n != "heuristic") +
                  f" all same {all(same.values())}", flush=True)
        del w1p, w2, x, plan, tiled, mid
        torch.cuda.empty_cache()
    save("dev_tiled_rule_check", rows, {"note": "each GEMM on tiled weights: the heuristic's classes and the 128-row "
                                        "class moved down; ratios over the heuristic on tiled weights"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
