"""Do tiled weights, whose row blocks hold their k-blocks one after the other, stream faster?
(dev check on the H200, not a test)

dev_decode_box_read_check.json: reading the gate/up weight tiles at T = 1 and 16 by the GEMM's own
tensor-map boxes (64 columns x R rows of [E, N, K], 128 bytes from each of R rows) takes as long
as the GEMM, and 6-10 % longer than reading the same tiles front to back in 1-D bulk copies. So
the GEMM's weight stream is set by that access order, not by its work. In the tiled layout
``[E, N / r, K / 64, r, 64]`` (``GemmConfig.w_rows = r``) each block of r rows streams its
k-blocks from consecutive addresses, and the kernel loads the same box as a 5-D box of R / r row
blocks (the same bytes in shared memory).

Both GEMMs of a layer as bench_grouped_gemm calls them (heuristic tiles, the benchmark's routing,
the down GEMM a programmatic dependent), with the weights as given (``plain``) and tiled with
r = 16, 32, 64 (``wt16`` ...; only where r divides every class's weight box), and tiled with the
rows pre-swizzled and loaded by 1-D bulk copies, one per row block (``wt32b``, ``wt64b``;
``GemmConfig.w_bulk``; dev_decode_box_read_check found 1-D copies 6-10 % faster than the boxes).
The second run (``--bulk``, the default since) times plain, wt32, wt32b, wt64b. Outputs must be
bit-identical. Three interleaved repeats of a median of 10 replays, L2 read-flushed.
Result: benchmarks/results/dev_tiled_weights_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_tiled_weights_check.py [--points Model:T:routing,...]
"""
import argparse
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import compile_configs, layer_classes, layer_point, save, time_interleaved

import staticbatch_moe as moe
import staticbatch_moe.gemm as gemm_mod

POINTS = [(m, t, "uniform") for t in (1, 16, 128) for m in
          ("Qwen3-30B-A3B", "GPT-OSS-120B", "Qwen3-235B-A22B", "Mixtral-8x7B", "DeepSeek-V3")]
POINTS += [("Qwen3-30B-A3B", 4096, "uniform"), ("Qwen3-235B-A22B", 4096, "uniform"), ("Mixtral-8x7B", 1024, "uniform"),
           ("DeepSeek-V3", 4096, "uniform"), ("DeepSeek-V3", 4096, "skewed"), ("GPT-OSS-120B", 4096, "skewed"),
           ("GPT-OSS-120B", 16384, "uniform"), ("Mixtral-8x7B", 16384, "uniform")]

PACKED: dict[tuple[int, int, bool], torch.Tensor] = {}  # (data_ptr of a weight, r, bulk) -> its tiled copy
USE_PACKED = (0, False)  # (w_rows, w_bulk) of the calls being made ((0, False): the weights as given)
_tile_classes = gemm_mod._tile_classes
_weight_descriptor = gemm_mod._weight_descriptor


def pack(w: torch.Tensor, r: int, swizzle: bool = False) -> torch.Tensor:
    """[E, N, K] -> [E, N / r, K / 64, r, 64], N and K padded with zeros; with ``swizzle`` the
    16-byte chunk c of row i of each block stored at c ^ (i % 8) (the 128-byte swizzle)."""
    e, n, k = w.shape
    nb, kb = -(-n // r), -(-k // 64)
    padded = torch.zeros(e, nb * r, kb * 64, dtype=w.dtype, device=w.device)
    padded[:, :n, :k] = w
    out = padded.view(e, nb, r, kb, 64).permute(0, 1, 3, 2, 4).contiguous()
    if swizzle:
        rows = torch.arange(r, device=w.device).view(r, 1)
        src = torch.arange(8, device=w.device).view(1, 8) ^ (rows % 8)  # stored chunk j holds chunk j ^ (i % 8)
        chunks = out.view(e, nb, kb, r, 8, 8)
        out = torch.gather(chunks, 4, src.view(1, 1, 1, r, 8, 1).expand(e, nb, kb, r, 8, 8)).view(e, nb, kb, r, 64)
    return out.contiguous()


def tile_classes(*args, **kwargs):  # type: ignore[no-untyped-def]
    classes = _tile_classes(*args, **kwargs)
    if not USE_PACKED[0]:
        return classes
    return tuple(dataclasses.replace(c, config=dataclasses.replace(c.config, w_rows=USE_PACKED[0], w_bulk=USE_PACKED[1]))
                 for c in classes)


def weight_descriptor(weight, cfg):  # type: ignore[no-untyped-def]
    return _weight_descriptor(PACKED[weight.data_ptr(), cfg.w_rows, cfg.w_bulk] if cfg.w_rows else weight, cfg)


gemm_mod._tile_classes = tile_classes
gemm_mod._weight_descriptor = weight_descriptor


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", default="")
    args = ap.parse_args()
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("dev_tiled_weights_check needs a Hopper GPU")
        return 0
    points = POINTS
    if args.points:
        points = [(p.split(":")[0], int(p.split(":")[1]), p.split(":")[2]) for p in args.points.split(",")]
    global USE_PACKED

    def layouts(model: str, t: int) -> list[tuple[int, bool]]:
        boxes = [c.config.block_n // c.config.cluster for cls in layer_classes(model, t).values() for c in cls]
        return [(r, bulk) for r, bulk in ((32, False), (32, True), (64, True)) if all(b % r == 0 for b in boxes)]

    base = {c.config for m, t, _ in points for cls in layer_classes(m, t).values() for c in cls}
    configs = set(base)
    for m, t, _ in points:
        for r, bulk in layouts(m, t):
            configs |= {dataclasses.replace(c.config, w_rows=r, w_bulk=bulk) for cls in layer_classes(m, t).values()
                        for c in cls}
    print(compile_configs(sorted(configs, key=lambda c: c.kernel_name)), flush=True)
    rows = []
    for model, t, kind in points:
        PACKED.clear()
        w1p, w2, x, plan = layer_point(model, t, kind)
        rs = layouts(model, t)
        for r, bulk in rs:
            PACKED[w1p.packed.data_ptr(), r, bulk] = pack(w1p.packed, r, bulk)
            PACKED[w2.data_ptr(), r, bulk] = pack(w2, r, bulk)
        h, i, _, _ = moe.MODEL_SHAPES[model]
        outs = {}
        calls = {}
        for name, r in [("plain", (0, False))] + [(f"wt{r}" + ("b" if b else ""), (r, b)) for r, b in rs]:
            mid = torch.full((plan.num_rows, i), float("nan"), device="cuda", dtype=torch.bfloat16)
            y = torch.full((plan.num_rows, h), float("nan"), device="cuda", dtype=torch.bfloat16)

            def fn(mid=mid, y=y, r=r, x=x, w1p=w1p, w2=w2, plan=plan) -> None:  # type: ignore[no-untyped-def]
                global USE_PACKED
                USE_PACKED = r
                moe.grouped_gemm(x, w1p, plan, activation="silu_and_mul", out=mid)
                moe.grouped_gemm(mid, w2, plan, gather=False, out=y, programmatic_launch=True)
                USE_PACKED = (0, False)

            fn()
            torch.cuda.synchronize()
            outs[name] = y
            calls[name] = fn
        same = {n: bool(torch.equal(outs["plain"], o)) for n, o in outs.items()}
        finite = bool(torch.isfinite(outs["plain"]).all())
        ms = time_interleaved(calls, repeats=3, reps=10)
        med = {n: sorted(v)[1] for n, v in ms.items()}
        rows.append({"model": model, "T": t, "routing": kind, "bit_identical": same, "finite": finite, "ms": ms,
                     "median_ms": med, "over_plain": {n: v / med["plain"] for n, v in med.items()}})
        print(f"{model} T={t} {kind}:", ", ".join(f"{n} {v:.4f} ({v / med['plain']:.3f})" for n, v in med.items()),
              "bit-identical", same, flush=True)
        del w1p, w2, x, plan, outs, calls
        PACKED.clear()
        torch.cuda.empty_cache()
    save("dev_tiled_weights_check", rows, {"note": "both GEMMs as bench_grouped_gemm calls them, weights as given "
                                           "or tiled (w_rows = 16, 32, 64); ms, three interleaved repeats"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
