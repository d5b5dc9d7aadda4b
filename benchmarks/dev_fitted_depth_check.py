"""Is the 256-token fitted swap tile slow for its ring depth? (dev check on the H200, not a test)

The 256-token fitted tile ran 13-16 % behind the 128-token one at equal work (tenth session); its
256-row token stage leaves room for 4 ring stages where the 128-token tile has 6, and ncu showed
its DRAM at 78 % against 87 % (dev_fitted_ncu_stalls.json). This times, in one process, each GEMM
alone: the 128-token tile at 6, 5 and 4 stages, the 256-token tile (4 stages) and the heuristic's
tile, on an exact routing (DeepSeek-V3 and GPT-OSS-120B at T = 4096: 128 rows per expert, so both
fitted tiles run N = 128) and on the benchmark's uniform routing (GPT-OSS-120B T = 4096). Three
interleaved repeats of a median of 10 replays, L2 read-flushed. Result:
benchmarks/results/dev_fitted_depth_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_fitted_depth_check.py
"""
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import layer_point, save, time_interleaved

import staticbatch as sb
import staticbatch_moe as moe
from staticbatch_moe._gemm_config import choose_config, fitted_config, kernel_source

PTS = [("DeepSeek-V3", 4096, "exact"), ("GPT-OSS-120B", 4096, "exact"), ("GPT-OSS-120B", 4096, "uniform")]


def main() -> None:
    rows = []
    for model, t, rt in PTS:
        h, i, e, k = moe.MODEL_SHAPES[model]
        w1, w2, x, plan = layer_point(model, t, rt)
        mid = torch.randn(t * k, i, device="cuda", dtype=torch.bfloat16)
        cfgs = {}
        for gemm, act, gather, n, kk in (("up", "silu_and_mul", True, 2 * i, h), ("down", None, False, h, i)):
            f128 = fitted_config(128, act, "bf16", gather)
            cfgs[gemm] = {"f128s6": f128, "f128s5": dataclasses.replace(f128, stages=5),
                          "f128s4": dataclasses.replace(f128, stages=4), "f256s4": fitted_config(256, act, "bf16", gather),
                          "heur": choose_config(t * k, e, n, kk, "bf16", act, gather)}
        sb.compile_many([(kernel_source(c), c.kernel_name) for g in cfgs.values() for c in g.values()])
        calls = {}
        info = {"model": model, "T": t, "routing": rt}
        for gemm, group in cfgs.items():
            for name, cfg in group.items():
                info[f"{gemm}_{name}_config"] = cfg.kernel_name
                out = torch.empty(t * k, i if gemm == "up" else h, device="cuda", dtype=torch.bfloat16)

                def fn(cfg=cfg, out=out, gemm=gemm) -> None:  # type: ignore[no-untyped-def]
                    if gemm == "up":
                        moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=out, config=cfg)
                    else:
                        moe.grouped_gemm(mid, w2, plan, gather=False, out=out, config=cfg)

                fn()
                calls[f"{gemm}_{name}"] = fn
        info.update(time_interleaved(calls))
        print(info, flush=True)
        rows.append(info)
    save("dev_fitted_depth_check", rows, {"note": "ms, each GEMM alone, three interleaved repeats"})


if __name__ == "__main__":
    main()
