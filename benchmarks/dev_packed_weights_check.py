"""Does a k-block-major weight layout make the weight stream faster? (dev check on the H200, not a
test)

dev_decode_floor_check.json found that kernels which only read the T = 1 weights read them 14-16 %
faster when the SMs' concurrent reads are neighbours in memory (16 KB chunks dealt round robin)
than when each SM streams its own far-away region (Mixtral-8x7B 155 against 185 us for 705 MB).
The GEMM's weight tiles are the second kind: at k-block kb, SM j reads rows [R j, R (j + 1)) x
columns [64 kb, 64 kb + 64) of ``w[e]`` [N, K], 128 bytes from each of R rows K * 2 bytes apart.
In the k-block-major layout ``[E, K / 64, N, 64]`` (``GemmConfig.packed_w``) the same box is R * 128
contiguous bytes, and the boxes of all SMs at one k-block are neighbours.

Both GEMMs of a layer as bench_grouped_gemm calls them (heuristic tiles, the benchmark's routing,
the down GEMM a programmatic dependent), with the weights as given (``plain``) and packed
(``packed``: the same tiles with ``packed_w=True``). Outputs must be bit-identical. Three
interleaved repeats of a median of 10 replays, L2 read-flushed.
Result: benchmarks/results/dev_packed_weights_check.json. Not kept: 1-3 % slower at 13 of 15
decode points, 0-2 % faster at T >= 1024; the layout option was reverted after ``c1ba59f``, which
this script needs (it exits with a message without it).

Run::

    PYTHONPATH=. python benchmarks/dev_packed_weights_check.py [--points Model:T:routing,...]
"""
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import compile_configs, hopper_points, layer_classes, layer_point, save, time_interleaved

import staticbatch_moe as moe
import staticbatch_moe.gemm as gemm_mod

POINTS = [(m, t, "uniform") for t in (1, 16, 128) for m in
          ("Qwen3-30B-A3B", "GPT-OSS-120B", "Qwen3-235B-A22B", "Mixtral-8x7B", "DeepSeek-V3")]
POINTS += [("Qwen3-30B-A3B", 4096, "uniform"), ("Qwen3-235B-A22B", 4096, "uniform"), ("Mixtral-8x7B", 1024, "uniform"),
           ("DeepSeek-V3", 4096, "uniform"), ("DeepSeek-V3", 4096, "skewed"), ("GPT-OSS-120B", 4096, "skewed"),
           ("GPT-OSS-120B", 16384, "uniform"), ("Mixtral-8x7B", 16384, "uniform")]

PACKED: dict[int, torch.Tensor] = {}  # data_ptr of a weight -> its k-block-major copy
USE_PACKED = False
_tile_classes = gemm_mod._tile_classes
_weight_descriptor = gemm_mod._weight_descriptor


def pack(w: torch.Tensor) -> torch.Tensor:
    """[E, N, K] -> [E, K / 64, N, 64] (K a multiple of 64 at every benchmark shape)."""
    e, n, k = w.shape
    return w.view(e, n, k // 64, 64).permute(0, 2, 1, 3).contiguous()


def tile_classes(*args, **kwargs):  # type: ignore[no-untyped-def]
    classes = _tile_classes(*args, **kwargs)
    if not USE_PACKED:
        return classes
    return tuple(dataclasses.replace(c, config=dataclasses.replace(c.config, packed_w=True)) for c in classes)


def weight_descriptor(weight, cfg):  # type: ignore[no-untyped-def]
    return _weight_descriptor(PACKED[weight.data_ptr()] if cfg.packed_w else weight, cfg)


gemm_mod._tile_classes = tile_classes
gemm_mod._weight_descriptor = weight_descriptor


def main() -> int:
    points = hopper_points("dev_packed_weights_check", POINTS)
    if points is None:
        return 0
    if "packed_w" not in {f.name for f in dataclasses.fields(moe.GemmConfig)}:
        print("dev_packed_weights_check needs GemmConfig.packed_w (commit c1ba59f; reverted after it)")
        return 1
    global USE_PACKED
    configs = {c.config for m, t, _ in points for cls in layer_classes(m, t).values() for c in cls}
    configs |= {dataclasses.replace(c, packed_w=True) for c in configs}
    print(compile_configs(sorted(configs, key=lambda c: c.kernel_name)), flush=True)
    rows = []
    for model, t, kind in points:
        PACKED.clear()
        w1p, w2, x, plan = layer_point(model, t, kind)
        PACKED[w1p.packed.data_ptr()] = pack(w1p.packed)
        PACKED[w2.data_ptr()] = pack(w2)
        h, i, _, _ = moe.MODEL_SHAPES[model]
        outs = {}
        calls = {}
        for name, packed in (("plain", False), ("packed", True)):
            mid = torch.full((plan.num_rows, i), float("nan"), device="cuda", dtype=torch.bfloat16)
            y = torch.full((plan.num_rows, h), float("nan"), device="cuda", dtype=torch.bfloat16)

            def fn(mid=mid, y=y, packed=packed, x=x, w1p=w1p, w2=w2, plan=plan) -> None:  # type: ignore[no-untyped-def]
                global USE_PACKED
                USE_PACKED = packed
                moe.grouped_gemm(x, w1p, plan, activation="silu_and_mul", out=mid)
                moe.grouped_gemm(mid, w2, plan, gather=False, out=y, programmatic_launch=True)
                USE_PACKED = False

            fn()
            torch.cuda.synchronize()
            outs[name] = y
            calls[name] = fn
        same = bool(torch.equal(outs["plain"], outs["packed"])) and bool(torch.isfinite(outs["plain"]).all())
        ms = time_interleaved(calls, repeats=3, reps=10)
        med = {n: sorted(v)[1] for n, v in ms.items()}
        rows.append({"model": model, "T": t, "routing": kind, "bit_identical": same, "ms": ms, "median_ms": med,
                     "packed_over_plain": med["packed"] / med["plain"]})
        print(f"{model} T={t} {kind}: plain {med['plain']:.4f} packed {med['packed']:.4f} ms "
              f"({med['packed'] / med['plain']:.3f}), bit-identical {same}", flush=True)
        del w1p, w2, x, plan, outs, calls
        PACKED.clear()
        torch.cuda.empty_cache()
    save("dev_packed_weights_check", rows, {"note": "both GEMMs as bench_grouped_gemm calls them, weights as given "
                                            "or k-block-major (packed_w); ms, three interleaved repeats"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
