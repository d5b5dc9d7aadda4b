"""Fitted swap tiles in 2-CTA clusters that share the token tile (dev check on the H200, not a test).

ncu put the fitted 128-token tile's L2 at 95 % of its throughput (DRAM 85 %,
dev_fitted_ncu.txt), and each class of fitted tiles at T = 4096 under uniform routing runs at
0.77-0.81 of its own roofline (dev_class_roofline_check.json). In a 2-CTA cluster the two
blocks run neighbouring tiles, which for fitted tiles of an expert of one m-block are two of its
n-blocks: the same token rows. Each block then loads half of the token boxes into both by TMA
multicast, so the L2 serves each token stage once per cluster instead of once per block (two
m-blocks of one n-block share the weight tile the same way).

This times each GEMM of the layer (gate/up gathered with SiLU, down on grouped rows) with the
heuristic's tile classes as shipped, and with every fitted class in a cluster (``c2``); at the
Qwen3 points of T = 4096 (256 rows per expert, 64-row ping-pong tiles) also 256- and 160-token
fitted tiles for every expert, without and with a cluster. Outputs are NaN-poisoned first and compared
bit for bit with the shipped call's. Three interleaved repeats of a median of 10 replays, L2
read-flushed. Result: benchmarks/results/dev_fitted_cluster_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_fitted_cluster_check.py
"""
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import layer_classes, layer_point, save, time_interleaved

import staticbatch as sb
import staticbatch_moe as moe
from staticbatch_moe._gemm_config import TileClass, fitted_config, is_fitted, kernel_source

PTS = [("DeepSeek-V3", 4096, "uniform"), ("DeepSeek-V3", 4096, "skewed"), ("GPT-OSS-120B", 4096, "uniform"),
       ("GPT-OSS-120B", 4096, "skewed"), ("Qwen3-30B-A3B", 1024, "uniform"), ("Qwen3-235B-A22B", 1024, "uniform"),
       ("Qwen3-30B-A3B", 4096, "uniform"), ("Qwen3-235B-A22B", 4096, "uniform")]


def variants(model: str, t: int, gemm: str, classes) -> dict:  # type: ignore[no-untyped-def]
    up = gemm == "up"
    out = {"shipped": tuple(classes)}
    if any(is_fitted(c.config) for c in classes):
        out["c2"] = tuple(dataclasses.replace(c, config=dataclasses.replace(c.config, cluster=2))
                          if is_fitted(c.config) else c for c in classes)
    if model.startswith("Qwen3") and t == 4096:
        f256 = fitted_config(256, "silu_and_mul" if up else None, "bf16", up)
        f160 = fitted_config(160, "silu_and_mul" if up else None, "bf16", up)
        for name, f in (("fitted256", f256), ("fitted160", f160)):
            out[name] = (TileClass(f),)
            out[name + "_c2"] = (TileClass(dataclasses.replace(f, cluster=2)),)
    return out


def main() -> None:
    cfgs = set()
    for model, t, _ in PTS:
        for gemm, cl in layer_classes(model, t).items():
            for v in variants(model, t, gemm, cl).values():
                cfgs |= {c.config for c in v}
    sb.compile_many([(kernel_source(c), c.kernel_name) for c in cfgs])
    rows = []
    for model, t, rt in PTS:
        h, i, e, k = moe.MODEL_SHAPES[model]
        w1, w2, x, plan = layer_point(model, t, rt)
        mid_in = torch.randn(t * k, i, device="cuda", dtype=torch.bfloat16)
        for gemm, cl in layer_classes(model, t).items():
            up = gemm == "up"
            a, w, n_out = (x, w1, i) if up else (mid_in, w2, h)
            info = {"model": model, "T": t, "routing": rt, "gemm": gemm}
            calls, first = {}, None
            for name, classes in variants(model, t, gemm, cl).items():
                info[name + "_kernels"] = [c.config.kernel_name for c in classes]
                out = torch.full((t * k, n_out), float("nan"), device="cuda", dtype=torch.bfloat16)

                def fn(a=a, w=w, out=out, classes=classes, up=up) -> None:  # type: ignore[no-untyped-def]
                    moe.grouped_gemm(a, w, plan, gather=up, activation="silu_and_mul" if up else None, out=out,
                                     config=classes)
                fn()
                torch.cuda.synchronize()
                if first is None:
                    first = out.clone()
                else:
                    info[name + "_bit_identical"] = bool(torch.equal(out, first))
                    if not info[name + "_bit_identical"]:
                        ref = moe.grouped_gemm_reference(a, w, plan, gather=up,
                                                         activation="silu_and_mul" if up else None).float()
                        info[name + "_rel_err"] = float((out.float() - ref).norm() / ref.norm())
                calls[name] = fn
            info.update(time_interleaved(calls))
            print(info, flush=True)
            rows.append(info)
        w1 = w2 = x = mid_in = first = None
        calls = {}
        torch.cuda.empty_cache()
    save("dev_fitted_cluster_check", rows, {"note": "ms, each GEMM alone, three interleaved repeats"})


if __name__ == "__main__":
    main()
