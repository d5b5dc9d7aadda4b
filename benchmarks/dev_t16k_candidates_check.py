"""The candidate tiles of the two T = 16384 points nearest torch._grouped_mm (dev check on the H200,
not a test).

Mixtral-8x7B and Qwen3-30B-A3B at T = 16384 measured within 1-3 % of ``torch._grouped_mm``
(either side, run to run). This times each GEMM alone (gate/up gathered with SiLU, down on
grouped rows; uniform routing) with every configuration ``candidate_configs`` proposes, the
heuristic's first, to see whether another tile is clearly faster. Three interleaved repeats of a
median of 10 replays, L2 read-flushed; outputs compared with the heuristic's. Result:
benchmarks/results/dev_t16k_candidates_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_t16k_candidates_check.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import LayerGemms, save, time_interleaved

import staticbatch as sb
import staticbatch_moe as moe
from staticbatch_moe._gemm_config import candidate_configs, kernel_source

PTS = (("Qwen3-30B-A3B", 16384), ("Mixtral-8x7B", 16384))


def cands(model: str, t: int, gemm: str) -> list:
    h, i, e, k = moe.MODEL_SHAPES[model]
    if gemm == "up":
        return candidate_configs(t * k, e, 2 * i, h, "bf16", "silu_and_mul", True)
    return candidate_configs(t * k, e, h, i, "bf16", None, False)


def main() -> None:
    cfgs = {c for m, t in PTS for g in ("up", "down") for c in cands(m, t, g)}
    sb.compile_many([(kernel_source(c), c.kernel_name) for c in cfgs])
    rows = []
    for model, t in PTS:
        torch.manual_seed(0)
        lg = LayerGemms(model, t)
        for gemm in ("up", "down"):
            info = {"model": model, "T": t, "gemm": gemm}
            calls, ref = {}, None
            for j, cfg in enumerate(cands(model, t, gemm)):
                out, fn = lg.call(gemm, cfg)
                fn()
                torch.cuda.synchronize()
                name = f"{j}:{cfg.kernel_name}"
                if ref is None:
                    ref = out.clone()
                else:
                    info[name + "_bit_identical"] = bool(torch.equal(out, ref))
                calls[name] = fn
            info.update(time_interleaved(calls))
            print(info, flush=True)
            rows.append(info)
        del lg
        torch.cuda.empty_cache()
    save("dev_t16k_candidates_check", rows, {"note": "ms, each GEMM alone, uniform routing, three interleaved repeats"})


if __name__ == "__main__":
    main()
