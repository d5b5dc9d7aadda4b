"""A class of 128-row clustered tiles for hot experts over 64-row ping-pong tiles, with the
kernel's skip of dead 64-row halves (dev check on the H200, not a test).

Since 128-row tiles skip a consumer group whose rows lie past the expert's end
(``GemmShape::kDeadSkip``), their token granularity is 64 rows like the ping-pong tiles', while
each weight stage feeds 128 rows (and a 2-CTA cluster shares it). This times both GEMMs of a layer
(as bench_grouped_gemm calls them) with the heuristic's tiles and with tile classes that give
experts of more than R rows (R = 320, 640) the heuristic's 128-row tile of the same width, at the
points whose heuristic tile is 64-row ping-pong (T = 4096, Mixtral-8x7B T = 1024), and the
converse at Qwen3-30B-A3B T = 16384 (ping-pong for experts of at most 320 rows). Uniform and skewed
routing; three interleaved repeats of a median of 10 replays, L2 read-flushed; outputs compared
with the heuristic's. Result: benchmarks/results/dev_hot128_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_hot128_check.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import layer_inputs, layer_plan, save, time_interleaved

import staticbatch as sb
import staticbatch_moe as moe
from staticbatch_moe._gemm_config import TileClass, _prefill_config, choose_config, kernel_source

pts = [("DeepSeek-V3", 4096), ("GPT-OSS-120B", 4096), ("Qwen3-235B-A22B", 4096), ("Qwen3-30B-A3B", 4096),
       ("Mixtral-8x7B", 1024), ("Qwen3-30B-A3B", 16384)]


def variants(model: str, t: int, gemm: str) -> dict:
    h, i, e, k = moe.MODEL_SHAPES[model]
    args = (t * k, e, 2 * i, h, "bf16", "silu_and_mul", True) if gemm == "up" else (t * k, e, h, i, "bf16", None, False)
    heur = choose_config(*args)
    act, gather, kk = args[5], args[6], args[3]
    if heur.block_m == 64:
        tall = _prefill_config(128, heur.block_n, act, "bf16", gather, kk)
        return {f"hot{r}": (TileClass(tall, r, None), TileClass(heur, 0, r)) for r in (320, 640)}
    pp = _prefill_config(64, heur.block_n, act, "bf16", gather, kk)
    return {"cold320": (TileClass(heur, 320, None), TileClass(pp, 0, 320))}


def main() -> None:
    cfgs = {c.config for m, t in pts for g in ("up", "down") for v in variants(m, t, g).values() for c in v}
    sb.compile_many([(kernel_source(c), c.kernel_name) for c in cfgs])
    rows = []
    for model, t in pts:
        h, i, e, k = moe.MODEL_SHAPES[model]
        w1, w2, x = layer_inputs(model, t)
        m = t * k
        vu, vd = variants(model, t, "up"), variants(model, t, "down")
        for kind in ("uniform", "skewed"):
            plan = layer_plan(model, t, kind)
            info = {"model": model, "T": t, "routing": kind, "max_rows": int(plan.expert_counts.max())}
            calls = {}
            ref = None
            for name in ["heuristic", *vu]:
                cu, cd = (None, None) if name == "heuristic" else (vu[name], vd[name])
                mid = torch.full((m, i), float("nan"), device="cuda", dtype=torch.bfloat16)
                y = torch.full((m, h), float("nan"), device="cuda", dtype=torch.bfloat16)

                def both(cu=cu, cd=cd, plan=plan, mid=mid, y=y) -> None:  # type: ignore[no-untyped-def]
                    moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid, config=cu)
                    moe.grouped_gemm(mid, w2, plan, gather=False, out=y, programmatic_launch=True, config=cd)

                both()
                torch.cuda.synchronize()
                if ref is None:
                    ref = y.clone()
                else:
                    info[f"{name}_bit_identical"] = bool(torch.equal(y, ref))
                calls[name] = both
            info.update(time_interleaved(calls))
            print(info, flush=True)
            rows.append(info)
        w1 = w2 = x = None
        torch.cuda.empty_cache()
    save("dev_hot128_check", rows, {"note": "ms, both GEMMs, three interleaved repeats"})


if __name__ == "__main__":
    main()
