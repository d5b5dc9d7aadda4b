"""Tiled weights (``pack_weight``) against weights as given, both GEMMs of a layer (dev check on
the H200, not a test).

dev_decode_box_read_check.json: reading the gate/up weight tiles at T = 1 and 16 by the GEMM's own
tensor-map boxes (64 columns x R rows of [E, N, K], 128 bytes from each of R rows) takes as long
as the GEMM, and 6-10 % longer than reading the same tiles front to back in 1-D bulk copies.

History of this script (results kept):

- ``dev_tiled_weights_check_tensor.json`` (``0d1fd3c``): weights tiled in row blocks of r = 16,
  32, 64 rows, each block's k-blocks consecutive, loaded by a 5-D tensor map: no faster
  (-4.5 .. +4.6 %, mostly +0-3 %).
- ``dev_tiled_weights_bulk_log.txt`` (``97ee472``): the same tiles stored pre-swizzled and loaded
  by 1-D bulk copies, one per row block: 3-6 % faster at T = 1, 16, 128 with 64-row blocks; the
  run stopped at DeepSeek-V3 T = 128 (out of memory with four copies of the weights).
- This script: the library's form, ``pack_weight`` / ``pack_gate_up(tiled=True)`` (64-row
  blocks, pre-swizzled, bulk copies), ``plain`` against ``tiled``, the heuristic's tiles, both
  GEMMs as bench_grouped_gemm calls them (the down GEMM a programmatic dependent), over the
  grid. Outputs must be bit-identical. Three interleaved repeats of a median of 10 replays, L2
  read-flushed. ``dev_tiled_weights_check_runtime_loop.json`` (``9590c6c``): every box copied
  by a runtime loop over its pieces, 12-16 % slower than plain at decode.
  ``dev_tiled_weights_check.json`` (the kernel of ``9f40eb1``): whole 64-row blocks by an
  unrolled copy each, 3.1-6.3 % faster at T <= 128, slower from T = 4096.
  ``dev_tiled_weights_check_eighteenth.json``: clusters share a tiled weight tile only when its
  halves are whole blocks (else each CTA copies the whole tile), 96-row tiles as unrolled 32-row
  pieces (dev_tiled_cluster_check.json chose these).

Run::

    PYTHONPATH=. python benchmarks/dev_tiled_weights_check.py [--points Model:T:routing,...]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (
    compile_configs,
    hopper_points,
    layer_classes,
    layer_point,
    save,
    tiled_layer_weights,
    time_interleaved,
)

import staticbatch_moe as moe

POINTS = [(m, t, "uniform") for t in (1, 16, 128) for m in
          ("Qwen3-30B-A3B", "GPT-OSS-120B", "Qwen3-235B-A22B", "Mixtral-8x7B", "DeepSeek-V3")]
POINTS += [(m, t, r) for t in (1024, 4096, 16384) for m in
           ("Qwen3-30B-A3B", "GPT-OSS-120B", "Qwen3-235B-A22B", "Mixtral-8x7B", "DeepSeek-V3")
           for r in ("uniform", "skewed") if not (t == 16384 and r == "skewed")]


def main() -> int:
    points = hopper_points("dev_tiled_weights_check", POINTS)
    if points is None:
        return 0
    import dataclasses

    base = {c.config for m, t, _ in points for cls in layer_classes(m, t).values() for c in cls}
    configs = base | {dataclasses.replace(c, tiled_w=True) for c in base}
    print(compile_configs(sorted(configs, key=lambda c: c.kernel_name)), flush=True)
    rows = []
    for model, t, kind in points:
        w1p, w2, x, plan = layer_point(model, t, kind)
        w1t, w2t = tiled_layer_weights(w1p, w2)
        h, i, _, _ = moe.MODEL_SHAPES[model]
        outs, calls = {}, {}
        for name, (a1, a2) in (("plain", (w1p, w2)), ("tiled", (w1t, w2t))):
            mid = torch.full((plan.num_rows, i), float("nan"), device="cuda", dtype=torch.bfloat16)
            y = torch.full((plan.num_rows, h), float("nan"), device="cuda", dtype=torch.bfloat16)

            def fn(mid=mid, y=y, a1=a1, a2=a2, x=x, plan=plan) -> None:  # type: ignore[no-untyped-def]
                moe.grouped_gemm(x, a1, plan, activation="silu_and_mul", out=mid)
                moe.grouped_gemm(mid, a2, plan, gather=False, out=y, programmatic_launch=True)

            fn()
            torch.cuda.synchronize()
            outs[name] = y
            calls[name] = fn
        valid = int(plan.expert_starts[-1])
        same = bool(torch.equal(outs["plain"], outs["tiled"]))
        finite = bool(torch.isfinite(outs["plain"][:valid]).all())
        ms = time_interleaved(calls, repeats=3, reps=10)
        med = {n: sorted(v)[1] for n, v in ms.items()}
        rows.append({"model": model, "T": t, "routing": kind, "bit_identical": same, "finite": finite, "ms": ms,
                     "median_ms": med, "tiled_over_plain": med["tiled"] / med["plain"]})
        print(f"{model} T={t} {kind}: plain {med['plain']:.4f} tiled {med['tiled']:.4f} "
              f"({med['tiled'] / med['plain']:.3f}) bit-identical {same} finite {finite}", flush=True)
        del w1p, w2, x, plan, w1t, w2t, outs, calls
        torch.cuda.empty_cache()
    save(os.environ.get("SB_RESULT_NAME", "dev_tiled_weights_check"), rows, {"note": "both GEMMs as bench_grouped_gemm calls them, weights as given "
                                           "or tiled (pack_weight); ms, three interleaved repeats"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
