"""Where the time of each tile class goes at T = 4096 (dev check on the H200, not a test).

Skewed routing at T = 4096 runs 18-23 % longer than uniform routing on the same FLOPs and
weight bytes (DeepSeek-V3, GPT-OSS-120B). The heuristic's classes run one launch after the
other: the hot experts' 128-row clustered tiles, then the 64-row ping-pong tiles, then the
fitted 160-token swap tiles. This times each GEMM of the layer with all its classes (as
grouped_gemm launches them) and each class launched alone over its own experts, and gives each
class its own roofline: its FLOPs, and the bytes of the weights of its experts that have rows
plus its token rows in and out. So it says which class runs below its own roofline (the hot
class below the compute ceiling, or the cold classes below the 4.5 TB/s of weight streaming).
Three interleaved repeats of a median of 10 replays, L2 read-flushed.
Result: benchmarks/results/dev_class_roofline_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_class_roofline_check.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import COMPUTE_CEILING_TFLOPS, MEMORY_CEILING_TBPS, layer_classes, layer_point, save, time_interleaved

import staticbatch as sb
import staticbatch_moe as moe
import staticbatch_moe.gemm as gemm_mod
from staticbatch_moe._gemm_config import TileClass, _swap_config, fitted_config, kernel_source

PTS = [("DeepSeek-V3", 4096, "skewed"), ("DeepSeek-V3", 4096, "uniform"), ("GPT-OSS-120B", 4096, "skewed"),
       ("GPT-OSS-120B", 4096, "uniform"), ("Qwen3-235B-A22B", 4096, "skewed")]


def cold_alternatives(cls, up: bool) -> dict:  # type: ignore[no-untyped-def]
    """Other tiles for the last class (the coldest experts, rows 1 .. max_rows): fitted 128-token
    tiles (6 stages) and plain 64- and 48-token swap tiles (8 and 9 stages, cp.async gather),
    where that class holds experts of at most 160 rows."""
    act = "silu_and_mul" if up else None
    cfgs = {"fitted128": fitted_config(128, act, "bf16", up), "swap64": _swap_config(64, 128, act, "bf16", up),
            "swap48": _swap_config(48, 128, act, "bf16", up)}
    if cls.max_rows is None or cls.max_rows > 160:  # not a cold class
        return {}
    return {name: TileClass(c, cls.min_rows, cls.max_rows) for name, c in cfgs.items()
            if c != cls.config}


def class_launch(a, w, plan, out, cls, *, gather: bool, activation, staged):  # type: ignore[no-untyped-def]
    """One class's launch alone, as grouped_gemm makes it."""
    weight, n, _ = gemm_mod._validate(a, w, plan, gather, activation, out)
    k = weight.shape[2]
    c = cls.config
    off = plan.tile_offsets(c.block_m, c.block_n, n, c.split_k, (cls.min_rows, cls.max_rows))
    gemm_mod._launch(c, a.device.index, a, a.stride(0), weight, out, plan, n, k, gather, off, staged, False)


def roofline(counts: list[int], cls, n: int, k: int, n_out: int) -> dict:  # type: ignore[no-untyped-def]
    hi = cls.max_rows if cls.max_rows is not None else 1 << 40
    sel = [m for m in counts if cls.min_rows < m <= hi]
    rows = sum(sel)
    flops = 2.0 * rows * n * k
    byts = 2.0 * (len(sel) * n * k + rows * k + rows * n_out)
    return {"experts": len(sel), "rows": rows, "flops": flops, "bytes": byts,
            "floor_ms": max(flops / (COMPUTE_CEILING_TFLOPS * 1e9), byts / (MEMORY_CEILING_TBPS * 1e9))}


def main() -> None:
    cfgs = {c.config for model, t, _ in PTS for g in layer_classes(model, t).values() for c in g}
    cfgs |= {c.config for model, t, _ in PTS for g, cl in layer_classes(model, t).items()
             for c in cold_alternatives(cl[-1], g == "up").values()}
    sb.compile_many([(kernel_source(c), c.kernel_name) for c in cfgs])
    rows = []
    for model, t, rt in PTS:
        h, i, e, k = moe.MODEL_SHAPES[model]
        w1, w2, x, plan = layer_point(model, t, rt)
        counts = plan.expert_counts.tolist()
        classes = layer_classes(model, t)
        mid_in = torch.randn(t * k, i, device="cuda", dtype=torch.bfloat16)
        for gemm, cl in classes.items():
            up = gemm == "up"
            a, w = (x, w1) if up else (mid_in, w2)
            n, kk, n_out = (2 * i, h, i) if up else (h, i, h)
            act = "silu_and_mul" if up else None
            out = torch.full((t * k, n_out), float("nan"), device="cuda", dtype=torch.bfloat16)
            staged = torch.empty(plan.num_rows, kk, dtype=a.dtype, device=a.device) if up else None
            calls = {"all": lambda a=a, w=w, out=out, act=act, up=up: moe.grouped_gemm(
                a, w, plan, gather=up, activation=act, out=out)}
            info = {"model": model, "T": t, "routing": rt, "gemm": gemm, "classes": []}
            for j, c in enumerate(cl):
                rf = roofline(counts, c, n, kk, n_out)
                rf["kernel"] = c.config.kernel_name
                rf["min_rows"], rf["max_rows"] = c.min_rows, c.max_rows
                info["classes"].append(rf)
                calls[f"class{j}"] = (lambda a=a, w=w, out=out, act=act, up=up, c=c, staged=staged:
                                      class_launch(a, w, plan, out, c, gather=up, activation=act, staged=staged))
            for name, c in cold_alternatives(cl[-1], up).items():
                calls[f"last_{name}"] = (lambda a=a, w=w, out=out, act=act, up=up, c=c, staged=staged:
                                         class_launch(a, w, plan, out, c, gather=up, activation=act, staged=staged))
            for fn in calls.values():
                fn()
            torch.cuda.synchronize()
            info.update(time_interleaved(calls))
            med = {name: sorted(v)[len(v) // 2] for name, v in info.items() if name in calls}
            for j, rf in enumerate(info["classes"]):
                ms = med[f"class{j}"]
                rf.update(ms=ms, tbps=rf["bytes"] / ms / 1e9, tflops=rf["flops"] / ms / 1e9,
                          efficiency=rf["floor_ms"] / ms)
            info["sum_of_classes_ms"] = sum(med[f"class{j}"] for j in range(len(cl)))
            last = info["classes"][-1]
            info["last_alternatives"] = {name[5:]: {"ms": ms, "tbps": last["bytes"] / ms / 1e9}
                                         for name, ms in med.items() if name.startswith("last_")}
            print({kk2: v for kk2, v in info.items()}, flush=True)
            rows.append(info)
        w1 = w2 = x = mid_in = None
        torch.cuda.empty_cache()
    save("dev_class_roofline_check", rows, {"note": "ms, each GEMM alone (all classes) and each class alone; "
                                                     "three interleaved repeats"})


if __name__ == "__main__":
    main()
