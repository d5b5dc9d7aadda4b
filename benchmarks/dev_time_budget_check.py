"""Where each GEMM's time goes between the regular problem and the call the layer makes (dev
check on the H200, not a test).

For each GEMM of the layer (``up``: N = 2I, K = H; ``down``: N = H, K = I) with the heuristic's
tiles (``config=None``), times, in one process:

- ``exact``: every expert exactly ``T * k / E`` rows (exact routing), pre-grouped rows, no
  activation: the problem without irregularity;
- ``uniform``: the benchmark's uniform routing, pre-grouped rows, no activation: adds the
  experts' partial last tiles (64-row granularity);
- ``uniform_silu`` (up only): the same with SiLU-and-mul fused (half the output);
- ``called`` (up only): as the layer calls it: gathered through the plan (the staged copy) and
  SiLU-and-mul; the down GEMM's call is ``uniform``;
- ``bmm``: cuBLAS's batched GEMM on the exact problem (``torch.bmm`` over ``[E, rows, K] x
  [E, K, N]``, the weights as the transposed ``[E, N, K]`` view);
- ``dense``: cuBLAS's one GEMM of the same total size (``[T * k, K] x [K, N]``).

Five interleaved repeats of a median of 10 replays, L2 read-flushed. Result:
benchmarks/results/dev_time_budget_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_time_budget_check.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import layer_plan, save, time_interleaved

PTS = [("Qwen3-30B-A3B", 4096), ("Qwen3-235B-A22B", 4096), ("Mixtral-8x7B", 1024), ("Qwen3-30B-A3B", 16384),
       ("GPT-OSS-120B", 16384), ("DeepSeek-V3", 16384)]


def run(model: str, t: int, gemm: str) -> dict:
    import torch

    import staticbatch_moe as moe

    h, i, e, k = moe.MODEL_SHAPES[model]
    n, kk = (2 * i, h) if gemm == "up" else (h, i)
    m = t * k
    torch.manual_seed(0)
    plans = {r: layer_plan(model, t, r) for r in ("exact", "uniform")}
    a = torch.randn(m, kk, device="cuda", dtype=torch.bfloat16)
    x = torch.randn(t, kk, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(e, n, kk, device="cuda", dtype=torch.bfloat16) / kk**0.5
    wt = w.transpose(1, 2)
    wd = torch.randn(kk, n, device="cuda", dtype=torch.bfloat16)
    outs = {nm: torch.empty(m, n, device="cuda", dtype=torch.bfloat16) for nm in ("exact", "uniform", "dense")}
    half = torch.empty(m, n // 2, device="cuda", dtype=torch.bfloat16)
    bmm_out = torch.empty(e, m // e, n, device="cuda", dtype=torch.bfloat16)
    calls = {
        "exact": lambda: moe.grouped_gemm(a, w, plans["exact"], gather=False, out=outs["exact"]),
        "uniform": lambda: moe.grouped_gemm(a, w, plans["uniform"], gather=False, out=outs["uniform"]),
    }
    if gemm == "up":
        wp = moe.pack_gate_up(w)  # the gate/up layout the fused SiLU reads
        calls["uniform_silu"] = lambda: moe.grouped_gemm(a, wp, plans["uniform"], gather=False,
                                                         activation="silu_and_mul", out=half)
        calls["called"] = lambda: moe.grouped_gemm(x, wp, plans["uniform"], activation="silu_and_mul", out=half)
    calls["bmm"] = lambda: torch.bmm(a.view(e, m // e, kk), wt, out=bmm_out)
    calls["dense"] = lambda: torch.mm(a, wd, out=outs["dense"])
    for fn in calls.values():
        fn()
    torch.cuda.synchronize()
    err = float((outs["exact"].float() - bmm_out.view(m, n).float()).norm() / bmm_out.float().norm())
    ms = time_interleaved(calls, repeats=5)
    med = {nm: sorted(v)[len(v) // 2] for nm, v in ms.items()}
    info = {"model": model, "T": t, "gemm": gemm, "N": n, "K": kk, "rows": m,
            "max_rows_uniform": int(plans["uniform"].expert_counts.max()), "exact_vs_bmm_rel_err": err,
            "tflops": {nm: round(2 * m * n * kk / v / 1e9, 1) for nm, v in med.items()}, **ms}
    print(info, flush=True)
    return info


def main() -> None:
    save("dev_time_budget_check", [run(model, t, g) for model, t in PTS for g in ("up", "down")],
         {"note": "ms per GEMM, heuristic tiles; see the script's docstring for the variants"})


if __name__ == "__main__":
    main()
