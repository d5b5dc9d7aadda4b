"""64-row ping-pong tiles with and without tail rows (dev check on the H200, not a test).

With uniform routing an expert's rows scatter around the mean (DeepSeek-V3 T = 4096: 99-165
around 128), so many experts end a few rows past a multiple of 64 and need a whole 64-row tile
for them (``dev_exact_counts_check.json``: 5-21 % of these GEMMs). With
``GemmConfig.tail_rows=16`` an expert's last tile also takes up to 16 rows past its 64, computed
as swap-mode wgmmas (weight rows x 16 tokens) on the weight stage already in shared memory.

This times, in one process, each GEMM of the points where the heuristic takes 64-row ping-pong
tiles (T = 4096 for four models, Mixtral-8x7B T = 1024; uniform routing): the heuristic's tile
against the same tile with tail rows (ring shortened where shared memory needs it). Gate/up
gathered (staged) with SiLU fused, down on random grouped rows. Three interleaved repeats of a
median of 10 replays, L2 read-flushed; outputs compared with the plain tile's and the float32
reference. Result: benchmarks/results/dev_tail_rows_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_tail_rows_check.py [MODEL_PREFIX]
"""
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grouped_gemm import routing
from common import layer_weights, save, time_interleaved

import staticbatch as sb
import staticbatch_moe as moe
from staticbatch_moe._gemm_config import _max_stages, choose_config, kernel_source, tiles_per_task

PTS = [("DeepSeek-V3", 4096), ("GPT-OSS-120B", 4096), ("Qwen3-235B-A22B", 4096), ("Qwen3-30B-A3B", 4096),
       ("Mixtral-8x7B", 1024)]
if len(sys.argv) > 1:
    PTS = [p for p in PTS if p[0].startswith(sys.argv[1])]


def variants_of(model: str, t: int, gemm: str) -> dict:
    """{name: config} of one GEMM of a point: the heuristic's tile and it with tail rows."""
    h, i, e, k = moe.MODEL_SHAPES[model]
    m = t * k
    args = (m, e, 2 * i, h, "bf16", "silu_and_mul", True) if gemm == "up" else (m, e, h, i, "bf16", None, False)
    plain = choose_config(*args)
    assert plain.pingpong and plain.block_m == 64, plain
    stages = min(plain.stages, _max_stages(64, plain.block_n, plain.stages, pingpong=True, tail_rows=16))
    return {"plain": plain, "tail": dataclasses.replace(plain, tail_rows=16, stages=stages)}


def main() -> None:
    cfgs = {c for model, t in PTS for g in ("up", "down") for c in variants_of(model, t, g).values()}
    sb.compile_many([(kernel_source(c), c.kernel_name) for c in cfgs])

    rows = []
    for model, t in PTS:
        h, i, e, k = moe.MODEL_SHAPES[model]
        torch.manual_seed(0)
        w1, w2 = layer_weights(h, i, e)
        x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        m = t * k
        mid = torch.randn(m, i, device="cuda", dtype=torch.bfloat16)
        plan = moe.route_plan(routing("uniform", t, e, k, seed=t), e)
        counts = plan.expert_counts.tolist()
        info = {"model": model, "T": t, "rows_min_max": (min(counts), max(counts))}
        calls = {}
        for gemm in ("up", "down"):
            variants = variants_of(model, t, gemm)
            n = 2 * i if gemm == "up" else h
            ref = None
            exact = (moe.grouped_gemm_reference(x, w1, plan, activation="silu_and_mul") if gemm == "up"
                     else moe.grouped_gemm_reference(mid, w2, plan, gather=False)).float()
            for name, cfg in variants.items():
                info[f"{gemm}_{name}_config"] = cfg.kernel_name
                info[f"{gemm}_{name}_tiles"] = sum(tiles_per_task(c, n, cfg) for c in counts)
                out = torch.full((m, i if gemm == "up" else h), float("nan"), device="cuda", dtype=torch.bfloat16)

                def fn(cfg=cfg, out=out, gemm=gemm) -> None:  # type: ignore[no-untyped-def]
                    if gemm == "up":
                        moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=out, config=cfg)
                    else:
                        moe.grouped_gemm(mid, w2, plan, gather=False, out=out, config=cfg)

                fn()
                torch.cuda.synchronize()
                info[f"{gemm}_{name}_rel_err"] = float((out.float() - exact).norm() / exact.norm())
                if ref is None:
                    ref = out.clone()
                else:
                    info[f"{gemm}_{name}_rel_diff"] = float((out.float() - ref.float()).norm() / ref.float().norm())
                calls[f"{gemm}_{name}"] = fn
        info.update(time_interleaved(calls))
        print(info, flush=True)
        rows.append(info)
        w1 = w2 = x = mid = None
        calls = {}
        torch.cuda.empty_cache()
    save("dev_tail_rows_check", rows, {"note": "ms, uniform routing, each GEMM alone, three interleaved repeats"})


if __name__ == "__main__":
    main()
