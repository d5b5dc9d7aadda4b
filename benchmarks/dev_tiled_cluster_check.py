"""Tiled weights at T >= 1024: which way of copying a weight tile keeps pace with the tensor map
(dev check on the H200, not a test).

dev_tiled_weights_check.json (``9f40eb1``): tiled weights were 3-6 % faster than plain ones at
T <= 128 but up to 17 % slower at T = 16384, where the heuristic's tiles run in 2-CTA clusters
(128 x 192: 96-row halves, copied by a runtime loop over pieces; 128 x 256: 128-row halves,
whole blocks) and each CTA multicasts its half of the weight tile to both.

The copy was chosen at compile time by a temporary macro ``SB_TILED_W_MODE`` in grouped_gemm.cuh
(never committed; the kernel since ``980af6e`` keeps mode 3 for 96-row cluster halves and mode 0
for halves of whole blocks, and copies 96-row tiles as in mode 1), passed here through
``STATICBATCH_NVRTC_OPTIONS``: 0 as ``9f40eb1``; 1: boxes that are not whole 64-row blocks as
unrolled 32-row pieces; 3: no multicast (each CTA of a cluster copies the whole tile, as whole
blocks); 4: 1 and 3. Every mode's kernels are loaded side by side (one kernel cache per mode),
and each GEMM of the layer (up: gathered, SiLU fused; down) is timed alone, plain weights
against tiled weights under each mode, interleaved: three repeats of a median of 10 replays,
L2 read-flushed. Outputs must be bit-identical to the plain weights'.

Run::

    PYTHONPATH=. python benchmarks/dev_tiled_cluster_check.py [--modes 0,1,3,4] [--points Model:T:routing,...]
"""
import argparse
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (
    compile_configs,
    layer_classes,
    layer_point,
    parse_points,
    save,
    tiled_layer_weights,
    time_interleaved,
)

import staticbatch_moe as moe
from staticbatch_moe import gemm as gemm_mod

MODELS = ("Qwen3-30B-A3B", "GPT-OSS-120B", "Qwen3-235B-A22B", "Mixtral-8x7B", "DeepSeek-V3")
POINTS = [(m, 4096, r) for m in MODELS for r in ("uniform", "skewed")] + [(m, 16384, "uniform") for m in MODELS]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--modes", default="0,1,3,4")
    ap.add_argument("--points", default="")
    args = ap.parse_args()
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("dev_tiled_cluster_check needs a Hopper GPU")
        return 0
    modes = [int(m) for m in args.modes.split(",")]
    points = parse_points(args.points, POINTS)
    base = {c.config for m, t, _ in points for cls in layer_classes(m, t).values() for c in cls}
    tiled = {dataclasses.replace(c, tiled_w=True) for c in base}
    kernels = {}  # mode -> that mode's kernel cache (gemm._kernels)
    for mode in modes:
        os.environ["STATICBATCH_NVRTC_OPTIONS"] = f"-DSB_TILED_W_MODE={mode}"
        cfgs = sorted(tiled | (base if mode == modes[0] else set()), key=lambda c: c.kernel_name)
        print(f"mode {mode}:", compile_configs(cfgs), flush=True)
        kernels[mode] = {}
    plain_mode = modes[0]

    rows = []
    for model, t, kind in points:
        w1p, w2, x, plan = layer_point(model, t, kind)
        w1t, w2t = tiled_layer_weights(w1p, w2)
        h, i, _, _ = moe.MODEL_SHAPES[model]
        mid_ref = torch.randn(plan.num_rows, i, device="cuda", dtype=torch.bfloat16)
        for gemm in ("up", "down"):
            calls, outs = {}, {}
            variants = [("plain", plain_mode)] + [(f"tiled_m{m}", m) for m in modes]
            for name, mode in variants:
                ncols = i if gemm == "up" else h
                out = torch.full((plan.num_rows, ncols), float("nan"), device="cuda", dtype=torch.bfloat16)
                w = (w1p if name == "plain" else w1t) if gemm == "up" else (w2 if name == "plain" else w2t)

                def fn(out=out, w=w, mode=mode, gemm=gemm, x=x, plan=plan, mid_ref=mid_ref) -> None:  # type: ignore[no-untyped-def]
                    os.environ["STATICBATCH_NVRTC_OPTIONS"] = f"-DSB_TILED_W_MODE={mode}"
                    gemm_mod._kernels = kernels[mode]
                    if gemm == "up":
                        moe.grouped_gemm(x, w, plan, activation="silu_and_mul", out=out)
                    else:
                        moe.grouped_gemm(mid_ref, w, plan, gather=False, out=out)

                fn()
                torch.cuda.synchronize()
                outs[name] = out
                calls[name] = fn
            valid = int(plan.expert_starts[-1])
            same = {n: bool(torch.equal(outs["plain"][:valid], o[:valid])) for n, o in outs.items() if n != "plain"}
            finite = bool(torch.isfinite(outs["plain"][:valid]).all())
            ms = time_interleaved(calls, repeats=3, reps=10)
            med = {n: sorted(v)[1] for n, v in ms.items()}
            ratio = {n: round(med[n] / med["plain"], 4) for n in med if n != "plain"}
            rows.append({"model": model, "T": t, "routing": kind, "gemm": gemm, "bit_identical": same,
                         "finite": finite, "ms": ms, "median_ms": med, "over_plain": ratio})
            print(f"{model} T={t} {kind} {gemm}: plain {med['plain']:.4f} " +
                  " ".join(f"{n} {r:.3f}" for n, r in ratio.items()) + f" same {same} finite {finite}", flush=True)
            del outs, calls
        del w1p, w2, x, plan, w1t, w2t, mid_ref
        torch.cuda.empty_cache()
    save("dev_tiled_cluster_check", rows, {"note": "each GEMM alone, plain weights against tiled weights under "
                                           "each SB_TILED_W_MODE; ms, three interleaved repeats", "modes": modes})
    return 0


if __name__ == "__main__":
    sys.exit(main())
