"""Where the lowest points' time goes: tensor-pipe activity, bytes, clock and power (dev probe on
the H200, not a test).

The points below 0.70 at T >= 1024 (Qwen3-30B-A3B and Qwen3-235B-A22B at T = 4096, Mixtral-8x7B at
T = 1024, Qwen3-30B-A3B at T = 16384) run each GEMM with the heuristic's tiles on tiled weights,
as bench_grouped_gemm does. Beside them, cuBLAS's batched GEMM (``torch.bmm``) on the regular
problem of the same size (every expert ``T * k / E`` rows, pre-grouped, no activation). Two modes:

- default: each call back to back for 1 s while nvidia-smi samples the SM clock and the board
  power, and its time (median of 10 replays, L2 read-flushed); saved as
  benchmarks/results/dev_low_points_ncu.json;
- ``--ncu``: each call twice (no flush), for ncu with the clock locked::

    ncu --clock-control base -k regex:"sb_grouped_gemm|gemm|nvjet" --metrics \\
        gpu__time_duration.sum,sm__cycles_elapsed.avg.per_second,\\
        sm__pipe_tensor_cycles_active.avg.pct_of_peak_sustained_elapsed,\\
        sm__throughput.avg.pct_of_peak_sustained_elapsed,lts__t_bytes.sum,\\
        lts__throughput.avg.pct_of_peak_sustained_elapsed,dram__bytes_read.sum,dram__bytes_write.sum \\
        python3 benchmarks/dev_low_points_ncu.py --ncu

``--only=Model:T,...`` runs only those points. For the consumer warps' stalls by source line:
``STATICBATCH_NVRTC_OPTIONS=-lineinfo ncu --clock-control base -k regex:sb_grouped_gemm
--launch-count 2 --section WarpStateStats --section SourceCounters --page source --print-source
cuda --csv python3 benchmarks/dev_low_points_ncu.py --ncu --only=Qwen3-30B-A3B:4096``
(dev_low_points_stalls_ncu.csv).

Run::

    PYTHONPATH=. python benchmarks/dev_low_points_ncu.py [--ncu] [--only=Model:T,...]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import save, tiled_layer_point, time_cuda
from dev_dense_parity_check import sample_clock

import staticbatch_moe as moe

POINTS = (("Qwen3-30B-A3B", 4096), ("Qwen3-235B-A22B", 4096), ("Mixtral-8x7B", 1024), ("Qwen3-30B-A3B", 16384))


def calls(model: str, t: int) -> dict:
    """name -> (callable, useful FLOPs) for the point's two GEMMs and cuBLAS's batched pair."""
    h, i, e, k = moe.MODEL_SHAPES[model]
    w1, w2, x, plan = tiled_layer_point(model, t, "uniform")
    mid = torch.randn(plan.num_rows, i, device="cuda", dtype=torch.bfloat16)
    up_out = torch.empty(plan.num_rows, i, device="cuda", dtype=torch.bfloat16)
    down_out = torch.empty(plan.num_rows, h, device="cuda", dtype=torch.bfloat16)
    rows = t * k // e
    a_up = torch.randn(e, rows, h, device="cuda", dtype=torch.bfloat16)
    b_up = torch.randn(e, h, 2 * i, device="cuda", dtype=torch.bfloat16)
    a_dn = torch.randn(e, rows, i, device="cuda", dtype=torch.bfloat16)
    b_dn = torch.randn(e, i, h, device="cuda", dtype=torch.bfloat16)
    m = plan.num_rows
    return {
        "up": (lambda: moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=up_out), 2 * m * 2 * i * h),
        "down": (lambda: moe.grouped_gemm(mid, w2, plan, gather=False, out=down_out), 2 * m * h * i),
        "bmm_up": (lambda: torch.bmm(a_up, b_up), 2 * e * rows * 2 * i * h),
        "bmm_down": (lambda: torch.bmm(a_dn, b_dn), 2 * e * rows * h * i),
    }


def main() -> int:
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("dev_low_points_ncu needs a Hopper GPU")
        return 0
    ncu = "--ncu" in sys.argv
    only = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--only=")]  # e.g. --only=Qwen3-30B-A3B:4096
    points = [(m, int(t)) for m, t in (o.split(":") for o in only[0].split(","))] if only else POINTS
    rows = []
    for model, t in points:
        torch.manual_seed(0)
        for name, (fn, flops) in calls(model, t).items():
            if ncu:
                fn()
                fn()
                torch.cuda.synchronize()
                continue
            ms = time_cuda(fn, reps=10, flush_l2="read")["median_ms"]
            row = {"model": model, "T": t, "call": name, "ms": ms, "tflops": flops / ms / 1e9, **sample_clock(fn, 1.0)}
            print(row, flush=True)
            rows.append(row)
        torch.cuda.empty_cache()
    if not ncu:
        save("dev_low_points_ncu", rows, {"note": "ms: median of 10 replays, L2 read-flushed; clock and power: "
                                                  "nvidia-smi every 50 ms while the call runs back to back for 1 s"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
