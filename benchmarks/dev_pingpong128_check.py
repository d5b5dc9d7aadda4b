"""128-row ping-pong tiles (``GemmConfig(block_m=128, pingpong=True)``: each consumer group owns
whole 128-row tiles as two 64-row slices) against the heuristic's tiles, on the H200 (dev check,
not a test).

The layer GEMMs where the heuristic runs 64-row ping-pong tiles (T = 1024 and 4096): the heuristic's choice, 128 x 192 and 128 x 128 ping-pong tiles, and
128 x 192 ping-pong in a 2-CTA cluster. Interleaved repeats (CUDA-graph replay, L2 flushed,
median of 10 each); every output checked against the float32 reference. The result goes to
benchmarks/results/dev_pingpong128_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_pingpong128_check.py [--points Qwen3-30B-A3B:16384,...] [--name NAME]
"""
import argparse
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import LayerGemms, compile_configs, interleaved_ms, save

import staticbatch_moe as moe
from staticbatch_moe._gemm_config import _normal_config

POINTS = [("Qwen3-30B-A3B", 4096), ("Qwen3-235B-A22B", 4096), ("GPT-OSS-120B", 4096), ("DeepSeek-V3", 4096),
          ("Qwen3-30B-A3B", 1024), ("Mixtral-8x7B", 1024)]
REPEATS = 2


def candidates(layer: LayerGemms, gemm: str) -> dict[str, moe.GemmConfig]:
    c = layer.chosen(gemm)
    out = {"chosen": c}
    for bn, cl in ((192, 1), (192, 2)) if layer.t >= 16384 else ((192, 1), (128, 1), (192, 2)):
        cfg = _normal_config(128, bn, True, c.activation, "bf16", c.gather)
        if cfg.gather:
            cfg = dataclasses.replace(cfg, gather_mode="staged")
        out[f"pp128x{bn}" + ("_c2" if cl == 2 else "")] = dataclasses.replace(cfg, cluster=cl)
    return out


def bench() -> list[dict]:
    rows = []
    torch.manual_seed(0)
    for model, t in POINTS:
        layer = LayerGemms(model, t)
        for gemm in ("up", "down"):
            cands = candidates(layer, gemm)
            # As in bench_grouped_gemm, no float32 reference at T = 16384: there the outputs are
            # compared bitwise with the heuristic's (and checked for NaN) only.
            ref = layer.reference(gemm) if t < 16384 else None
            runs, errs = {}, {}
            for name, cfg in cands.items():
                out, fn = layer.call(gemm, cfg)
                fn()
                torch.cuda.synchronize()
                if not torch.isfinite(out).all():
                    errs[name] = float("inf")
                elif ref is not None:
                    errs[name] = float((out.double() - ref.double()).norm() / ref.double().norm())
                runs[name] = (out, fn)
            del ref
            equal = {n: bool(torch.equal(runs["chosen"][0], o)) for n, (o, _) in runs.items()}
            ms = interleaved_ms({n: fn for n, (_, fn) in runs.items()}, REPEATS)
            row = {"model": model, "T": t, "gemm": gemm, "rel_err": errs, "bitwise_equal_chosen": equal,
                   "configs": {n: c.kernel_name for n, c in cands.items()}, **ms}
            rows.append(row)
            print(row, flush=True)
        del layer
        torch.cuda.empty_cache()
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", default=None, help="model:T,... (default: the T = 1024 / 4096 points above)")
    ap.add_argument("--name", default="dev_pingpong128_check")
    args = ap.parse_args()
    if args.points:
        POINTS = [(p.split(":")[0], int(p.split(":")[1])) for p in args.points.split(",")]
    configs = sorted({c for model, t in POINTS for g in ("up", "down") for c in candidates(LayerGemms(model, t, data=False), g).values()},
                     key=lambda c: c.kernel_name)
    report = compile_configs(configs)
    print(report, flush=True)
    save(args.name, bench(),
         {"note": "ms, median of 10 per repeat, L2 flushed, repeats interleaved; rel_err against the float32 "
                  "reference", "ptxas": report})
