"""Tiled weights with their 64 x 64 blocks in k-block-major order (dev check on the H200, not a
test; experiment ``SB_TILED_KMAJOR``).

The shipped tiled layout is ``[E, N / 64, K / 64, 64, 64]``: a 64-row block's k-blocks follow
each other. The seventeenth session's k-block-major layout read by the tensor map (every SM's box
at one k-block a neighbour of the others') was faster at 6 of 8 points from T = 1024 and slower at
decode; tiled weights are the reverse (faster at decode, level to 5 % slower at T = 4096 where
the fitted swap tiles run). Here the same bulk copies read blocks stored ``[E, K / 64, N / 64, 64,
64]`` (the kernel compiled with ``-DSB_TILED_KMAJOR``, the weight permuted here). Each GEMM of the
layer with the heuristic's tiles for its weight, plain / tiled / k-major tiled, three interleaved
repeats of a median of 10 replays, L2 read-flushed, outputs compared bit for bit with plain.

Run::

    PYTHONPATH=. python benchmarks/dev_tiled_kmajor_check.py [--points Model:T:routing,...]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import compile_configs, layer_classes, layer_point, parse_points, save, time_interleaved

import staticbatch_moe as moe
from staticbatch_moe import gemm as gemm_mod

POINTS = [("Qwen3-30B-A3B", 1, "uniform"), ("GPT-OSS-120B", 1, "uniform"), ("DeepSeek-V3", 1, "uniform"),
          ("Qwen3-235B-A22B", 128, "uniform"), ("Mixtral-8x7B", 1024, "uniform"), ("DeepSeek-V3", 1024, "uniform"),
          ("DeepSeek-V3", 4096, "uniform"), ("GPT-OSS-120B", 4096, "uniform"), ("Qwen3-30B-A3B", 4096, "uniform"),
          ("Qwen3-235B-A22B", 4096, "uniform"), ("Qwen3-30B-A3B", 16384, "uniform"), ("Mixtral-8x7B", 16384, "uniform")]
OPTS = {"tiled": "", "kmajor": "-DSB_TILED_KMAJOR"}


def kmajor(w: moe.TiledWeight) -> moe.TiledWeight:
    """The same blocks stored [E, K / 64, N / 64, 64, 64] (kept in the shipped shape's view)."""
    t = w.tiles
    return moe.TiledWeight(t.permute(0, 2, 1, 3, 4).contiguous().view(t.shape), w.n, w.k)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", default="")
    args = ap.parse_args()
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("dev_tiled_kmajor_check needs a Hopper GPU")
        return 0
    points = parse_points(args.points, POINTS)
    plain = {c.config for m, t, _ in points for cls in layer_classes(m, t).values() for c in cls}
    tiled = {c.config for m, t, _ in points for cls in layer_classes(m, t, tiled_w=True).values() for c in cls}
    kernels = {}
    for name, opt in OPTS.items():
        os.environ["STATICBATCH_NVRTC_OPTIONS"] = opt
        cfgs = sorted(tiled | (plain if name == "tiled" else set()), key=lambda c: c.kernel_name)
        print(name, compile_configs(cfgs), flush=True)
        kernels[name] = {}
    rows = []
    for model, t, kind in points:
        w1p, w2, x, plan = layer_point(model, t, kind)
        w1t, w2t = moe.pack_weight(w1p.packed), moe.pack_weight(w2)
        weights = {"plain": (w1p, w2), "tiled": (moe.GateUpWeight(w1t), w2t),
                   "kmajor": (moe.GateUpWeight(kmajor(w1t)), kmajor(w2t))}
        h, i, _, _ = moe.MODEL_SHAPES[model]
        mid = torch.randn(plan.num_rows, i, device="cuda", dtype=torch.bfloat16)
        valid = int(plan.expert_starts[-1])
        for gemm in ("up", "down"):
            calls, outs = {}, {}
            for name, (a1, a2) in weights.items():
                out = torch.full((plan.num_rows, i if gemm == "up" else h), float("nan"), device="cuda",
                                 dtype=torch.bfloat16)
                mode = "kmajor" if name == "kmajor" else "tiled"

                def fn(out=out, a1=a1, a2=a2, mode=mode, gemm=gemm, x=x, plan=plan, mid=mid) -> None:  # type: ignore[no-untyped-def]
                    os.environ["STATICBATCH_NVRTC_OPTIONS"] = OPTS[mode]
                    gemm_mod._kernels = kernels[mode]
                    if gemm == "up":
                        moe.grouped_gemm(x, a1, plan, activation="silu_and_mul", out=out)
                    else:
                        moe.grouped_gemm(mid, a2, plan, gather=False, out=out)

                fn()
                torch.cuda.synchronize()
                calls[name], outs[name] = fn, out
            ref = outs["plain"][:valid]
            same = {n: bool(torch.equal(o[:valid], ref)) for n, o in outs.items() if n != "plain"}
            ms = time_interleaved(calls, repeats=3, reps=10)
            med = {n: sorted(v)[1] for n, v in ms.items()}
            ratio = {n: round(med[n] / med["plain"], 4) for n in med if n != "plain"}
            rows.append({"model": model, "T": t, "routing": kind, "gemm": gemm, "bit_identical": same,
                         "nan_free": not bool(ref.isnan().any()), "ms": ms, "median_ms": med, "over_plain": ratio})
            print(f"{model} T={t} {kind} {gemm}: plain {med['plain']:.4f} " +
                  " ".join(f"{n} {r:.3f}" for n, r in ratio.items()) + f" same {same}", flush=True)
            del outs, calls
        del w1p, w2, x, plan, w1t, w2t, weights, mid
        torch.cuda.empty_cache()
    save("dev_tiled_kmajor_check", rows, {"note": "each GEMM alone with the heuristic's tiles for its weight: plain, "
                                          "tiled, k-block-major tiled (SB_TILED_KMAJOR); ms, three interleaved repeats"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
