"""The staged gather's copy token by token (``gemm.STAGE_BY_TOKEN``, each token's row read once and
written to its top-k grouped rows) against row by row (each grouped row read from its token), on
the H200 (dev check, not a test).

The gate/up GEMM (staged gather, SiLU-and-mul) of the five model shapes at T = 1024, 4096 and
16384 where the heuristic stages it (one tile class), uniform routing: both ways, three
interleaved repeats (CUDA-graph replay, L2 flushed by a read, median of 10 each), whether the
outputs are bit-identical, and torch's ``index_select`` of the same rows for scale. The result goes
to benchmarks/results/dev_stage_by_token_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_stage_by_token_check.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import layer_weights, save, time_cuda

import staticbatch_moe as moe
import staticbatch_moe.gemm as gemm_mod
from staticbatch_moe._gemm_config import choose_tile_classes

REPEATS = 3


def bench() -> list[dict]:
    rows = []
    torch.manual_seed(0)
    for model in moe.MODEL_SHAPES:
        h, i, e, k = moe.MODEL_SHAPES[model]
        w1, _ = layer_weights(h, i, e)
        for t in (1024, 4096, 16384):
            classes = choose_tile_classes(t * k, e, 2 * i, h, "bf16", "silu_and_mul", True, num_tokens=t)
            cfg = classes[0].config
            if len(classes) != 1 or cfg.gather_mode != "staged":
                continue
            x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
            ids = torch.rand(t, e, device="cuda").topk(k, dim=1).indices.to(torch.int32)
            plan = moe.route_plan(ids, e)
            outs, ms = {}, {"by_token": [], "by_row": [], "index_select": []}
            for way in ("by_token", "by_row"):
                gemm_mod.STAGE_BY_TOKEN = way == "by_token"
                out = torch.full((t * k, i), float("nan"), device="cuda", dtype=torch.bfloat16)
                moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=out)
                outs[way] = out
            torch.cuda.synchronize()
            equal = bool(torch.equal(outs["by_token"], outs["by_row"]))
            no_nan = not bool(torch.isnan(outs["by_token"]).any())
            idx = plan.gather_idx.long()
            for _ in range(REPEATS):
                for way in ("by_token", "by_row"):
                    gemm_mod.STAGE_BY_TOKEN = way == "by_token"
                    out = outs[way]
                    ms[way].append(round(time_cuda(
                        lambda out=out, x=x, w1=w1: moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=out),
                        reps=10, flush_l2="read")["median_ms"], 4))
                ms["index_select"].append(round(time_cuda(lambda x=x: x.index_select(0, idx), reps=10,
                                                          flush_l2="read")["median_ms"], 4))
            gemm_mod.STAGE_BY_TOKEN = True
            row = {"model": model, "T": t, "config": cfg.kernel_name, "bitwise_equal": equal, "no_nan": no_nan,
                   "staged_mb": round(t * k * h * 2 / 1e6, 1), **ms}
            rows.append(row)
            print(row, flush=True)
            outs = x = None
        w1 = None
        torch.cuda.empty_cache()
    return rows


if __name__ == "__main__":
    save("dev_stage_by_token_check", bench(),
         {"note": "gate/up GEMM ms, median of 10 per repeat, L2 flushed by a read, repeats interleaved"})
