"""Single tile configurations against the heuristic's classes at T = 4096 with tiled weights
(dev check on the H200, not a test).

The points of T = 4096 hold four of the five lowest efficiencies of bench_grouped_gemm
(``beeb3a0``), and with tiled weights the classes rank differently (dev_tiled_class_check.json:
DeepSeek-V3's gate/up ran faster with 64 x 256 tiles alone than with the heuristic's three
classes). Here each GEMM of the layer runs with the heuristic's classes (plain and tiled weights)
and with each candidate configuration for every expert (tiled weights), three interleaved
repeats of a median of 10 replays, L2 read-flushed; outputs must be bit-identical to the
heuristic's on plain weights.

Run::

    PYTHONPATH=. python benchmarks/dev_t4096_tiled_candidates_check.py [--points Model:T:routing,...]
"""
import argparse
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import compile_configs, layer_classes, layer_point, parse_points, save, time_interleaved

import staticbatch_moe as moe
from staticbatch_moe._gemm_config import _normal_config

POINTS = [(m, 4096, "uniform") for m in ("Qwen3-30B-A3B", "Qwen3-235B-A22B", "GPT-OSS-120B", "DeepSeek-V3")]
# (block_m, block_n, pingpong, cluster)
CANDIDATES = [(64, 256, True, 1), (64, 192, True, 1), (64, 128, True, 1), (128, 192, True, 2), (128, 256, False, 2),
              (128, 128, False, 2)]


def candidate(bm: int, bn: int, pp: bool, cluster: int, up: bool) -> moe.GemmConfig:
    cfg = _normal_config(bm, bn, pp, "silu_and_mul" if up else None, "bf16", up)
    if up:
        cfg = dataclasses.replace(cfg, gather_mode="staged")
    return dataclasses.replace(cfg, cluster=cluster, tiled_w=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", default="")
    args = ap.parse_args()
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("dev_t4096_tiled_candidates_check needs a Hopper GPU")
        return 0
    points = parse_points(args.points, POINTS)
    base = {c.config for m, t, _ in points for cls in layer_classes(m, t).values() for c in cls}
    cands = {candidate(*c, up) for c in CANDIDATES for up in (False, True)}
    print(compile_configs(sorted(base | {dataclasses.replace(c, tiled_w=True) for c in base} | cands,
                                 key=lambda c: c.kernel_name)), flush=True)
    rows = []
    for model, t, kind in points:
        w1p, w2, x, plan = layer_point(model, t, kind)
        tiled = (moe.GateUpWeight(moe.pack_weight(w1p.packed)), moe.pack_weight(w2))
        h, i, _, _ = moe.MODEL_SHAPES[model]
        mid = torch.randn(plan.num_rows, i, device="cuda", dtype=torch.bfloat16)
        for gemm in ("up", "down"):
            up = gemm == "up"
            variants = {"heuristic_plain": ((w1p, w2), None), "heuristic_tiled": (tiled, None)}
            variants.update({candidate(*c, up).kernel_name: (tiled, candidate(*c, up)) for c in CANDIDATES})
            calls, outs = {}, {}
            for name, ((a1, a2), cfg) in variants.items():
                out = torch.full((plan.num_rows, i if up else h), float("nan"), device="cuda", dtype=torch.bfloat16)

                def fn(out=out, a1=a1, a2=a2, cfg=cfg, up=up, x=x, plan=plan, mid=mid) -> None:  # type: ignore[no-untyped-def]
                    if up:
                        moe.grouped_gemm(x, a1, plan, activation="silu_and_mul", out=out, config=cfg)
                    else:
                        moe.grouped_gemm(mid, a2, plan, gather=False, out=out, config=cfg)

                fn()
                torch.cuda.synchronize()
                calls[name], outs[name] = fn, out
            valid = int(plan.expert_starts[-1])
            ref = outs["heuristic_plain"][:valid]
            same = {n: bool(torch.equal(o[:valid], ref)) for n, o in outs.items()}
            ms = time_interleaved(calls, repeats=3, reps=10)
            med = {n: sorted(v)[1] for n, v in ms.items()}
            ratio = {n: round(v / med["heuristic_plain"], 4) for n, v in med.items()}
            rows.append({"model": model, "T": t, "routing": kind, "gemm": gemm, "bit_identical": same, "ms": ms,
                         "median_ms": med, "over_heuristic_plain": ratio})
            print(f"{model} T={t} {gemm}: heuristic plain {med['heuristic_plain']:.4f} " +
                  " ".join(f"{n.replace('sb_grouped_gemm_bf16_', '')} {r:.3f}" for n, r in ratio.items()
                           if n != "heuristic_plain") + f" all same {all(same.values())}", flush=True)
        del w1p, w2, x, plan, tiled, mid
        torch.cuda.empty_cache()
    save("dev_t4096_tiled_candidates_check", rows, {"note": "each GEMM: the heuristic's classes on plain and tiled "
                                                    "weights, candidate single configurations on tiled weights"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
