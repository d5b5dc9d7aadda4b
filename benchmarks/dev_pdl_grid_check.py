"""The down GEMM launched normally or as a programmatic dependent of the gate/up GEMM
(``programmatic_launch=True``), over the whole benchmark grid on the H200 (dev check, not a
test).

Both GEMMs of a layer with the heuristic's tiles, the five model shapes at T = 1 ... 16384 with
the benchmark's uniform routing, and skewed routing at T >= 1024; CUDA graph, L2 read-flushed,
three interleaved repeats of a median of 10 replays. (benchmarks/dev_pdl_check.py measured
T <= 128 only, with the write flush.) The result goes to
benchmarks/results/dev_pdl_grid_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_pdl_grid_check.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grouped_gemm import routing
from common import layer_weights, save, time_cuda

import staticbatch_moe as moe

REPEATS = 3


def main() -> int:
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("dev_pdl_grid_check needs a Hopper GPU (sm_90a); none is available here.")
        return 0
    rows = []
    for model in moe.MODEL_SHAPES:
        h, i, e, k = moe.MODEL_SHAPES[model]
        torch.manual_seed(0)
        w1, w2 = layer_weights(h, i, e)
        for t in (1, 16, 128, 1024, 4096, 16384):
            for kind in ("uniform", "skewed") if t >= 1024 else ("uniform",):
                plan = moe.route_plan(routing(kind, t, e, k, seed=t), e)
                x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
                mid = torch.empty(t * k, i, device="cuda", dtype=torch.bfloat16)
                y = torch.empty(t * k, h, device="cuda", dtype=torch.bfloat16)
                ms: dict[str, list[float]] = {"plain": [], "programmatic": []}
                for _ in range(REPEATS):
                    for way in ms:
                        def layer(pdl: bool = way == "programmatic") -> None:
                            moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid)
                            moe.grouped_gemm(mid, w2, plan, gather=False, out=y, programmatic_launch=pdl)

                        ms[way].append(round(time_cuda(layer, reps=10, flush_l2="read")["median_ms"], 4))
                down = moe.choose_config(t * k, e, h, i, "bf16", None, False)
                row = {"model": model, "T": t, "routing": kind, "down_config": down.kernel_name, **ms}
                print(row, flush=True)
                rows.append(row)
        w1 = w2 = None  # free this model's weights before the next one
        torch.cuda.empty_cache()
    save("dev_pdl_grid_check", rows, {"note": "ms, both GEMMs of a layer, three interleaved repeats (median of 10)"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
