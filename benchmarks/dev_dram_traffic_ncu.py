"""DRAM bytes each GEMM of the T = 16384 layers moves, against its compulsory traffic (dev probe on
the H200, not a test).

At Mixtral-8x7B T = 16384 an expert has 4096 rows, so its token rows (32 MB for the gate/up
GEMM, H = 4096) are read again for every n-block: tile ids run m-fastest within an expert, so a
wave of 132 tiles covers every m-block of about four n-blocks and the next wave reads all the
expert's rows again. Whether the L2 keeps them decides if a grouped tile order (cuBLAS-style
rasterisation) would save DRAM traffic, and with it power at these power-capped points. This
runs each GEMM of three T = 16384 layers twice with the heuristic's tiles, under ncu:

    ncu --clock-control none -k regex:sb_grouped_gemm --metrics \\
        dram__bytes_read.sum,dram__bytes_write.sum,lts__t_sector_hit_rate.pct,gpu__time_duration.sum \\
        python3 benchmarks/dev_dram_traffic_ncu.py

and prints each GEMM's compulsory bytes (weights of the experts with rows, token rows in,
output out; the staged gather's copy adds its rows written and read once more).
Result: benchmarks/results/dev_dram_traffic_ncu.txt. With the argument ``causes`` it runs the
variants of :func:`causes` instead (result: dev_dram_traffic_causes_ncu.txt), with ``dynamic``
those of :func:`dynamic` (dev_dram_traffic_dynamic_ncu.txt).
"""
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import layer_point

import staticbatch_moe as moe
from staticbatch_moe._gemm_config import without_store_warps

MODE = sys.argv[1] if len(sys.argv) > 1 else "heuristic"


def heuristic() -> None:
    """Each GEMM of three T = 16384 layers twice, the heuristic's tiles, uniform routing."""
    for model in ("Mixtral-8x7B", "Qwen3-30B-A3B", "DeepSeek-V3"):
        t = 16384
        h, i, e, k = moe.MODEL_SHAPES[model]
        w1, w2, x, plan = layer_point(model, t, "uniform")
        mid = torch.empty(t * k, i, device="cuda", dtype=torch.bfloat16)
        out = torch.empty(t * k, h, device="cuda", dtype=torch.bfloat16)
        experts = int((plan.expert_counts > 0).sum())
        rows = t * k
        up_bytes = 2 * (experts * 2 * i * h + t * h + rows * i)
        down_bytes = 2 * (experts * h * i + rows * i + rows * h)
        print(f"{model} T={t}: compulsory MB up {up_bytes / 1e6:.0f} (+ staged copy {2 * 2 * rows * h / 1e6:.0f}), "
              f"down {down_bytes / 1e6:.0f}", flush=True)
        for _ in range(2):
            moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid)
            moe.grouped_gemm(mid, w2, plan, gather=False, out=out)
        torch.cuda.synchronize()
        w1 = w2 = x = mid = out = None
        torch.cuda.empty_cache()


def causes() -> None:
    """Mixtral-8x7B and DeepSeek-V3 at T = 16384, each GEMM once per variant, in this order (ncu
    lists the launches in the same order): uniform and exact routing (every expert the same
    rows: no partial m-block, every tile as long); the heuristic's tiles, without the 2-CTA
    cluster, without store warps; gate/up also on pre-grouped rows (no staged copy)."""
    from common import exact_routing

    for model in ("Mixtral-8x7B", "DeepSeek-V3"):
        t = 16384
        h, i, e, k = moe.MODEL_SHAPES[model]
        w1, w2, x, plan_u = layer_point(model, t, "uniform")
        plans = {"uniform": plan_u, "exact": moe.route_plan(exact_routing(t, e, k), e)}
        mid = torch.randn(t * k, i, device="cuda", dtype=torch.bfloat16)
        out = torch.empty(t * k, h, device="cuda", dtype=torch.bfloat16)
        up_out = torch.empty(t * k, i, device="cuda", dtype=torch.bfloat16)
        from staticbatch_moe._gemm_config import choose_config

        up = choose_config(t * k, e, 2 * i, h, "bf16", "silu_and_mul", True)
        down = choose_config(t * k, e, h, i, "bf16", None, False)
        for rname, plan in plans.items():
            xg = x[plan.gather_idx.long()].contiguous()
            runs = [("up heuristic", lambda: moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=up_out,
                                                              config=up)),
                    ("up no cluster", lambda: moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=up_out,
                                                               config=dataclasses.replace(up, cluster=1))),
                    ("up no store warps", lambda: moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=up_out,
                                                                   config=without_store_warps(up))),
                    ("up pre-grouped", lambda: moe.grouped_gemm(
                        xg, w1, plan, gather=False, activation="silu_and_mul", out=up_out,
                        config=dataclasses.replace(up, gather=False, gather_mode="cp_async"))),
                    ("down heuristic", lambda: moe.grouped_gemm(mid, w2, plan, gather=False, out=out, config=down)),
                    ("down no cluster", lambda: moe.grouped_gemm(mid, w2, plan, gather=False, out=out,
                                                                 config=dataclasses.replace(down, cluster=1)))]
            for label, fn in runs:
                fn()  # warm (not profiled: ncu --launch-skip-before-match is not used; see the list)
                torch.cuda.synchronize()
                print(f"LAUNCH {model} {rname} {label} (profiled twice: warm, then again)", flush=True)
                fn()
                torch.cuda.synchronize()
        w1 = w2 = x = mid = out = up_out = xg = None
        torch.cuda.empty_cache()


def dynamic() -> None:
    """Mixtral-8x7B and DeepSeek-V3 at T = 16384, uniform routing: each GEMM with the heuristic's
    tiles, then the same tiles dynamic (GemmConfig.dynamic), each launched twice (warm, again)."""
    from staticbatch_moe._gemm_config import choose_config

    for model in ("Mixtral-8x7B", "DeepSeek-V3"):
        t = 16384
        h, i, e, k = moe.MODEL_SHAPES[model]
        w1, w2, x, plan = layer_point(model, t, "uniform")
        mid = torch.randn(t * k, i, device="cuda", dtype=torch.bfloat16)
        out = torch.empty(t * k, h, device="cuda", dtype=torch.bfloat16)
        up_out = torch.empty(t * k, i, device="cuda", dtype=torch.bfloat16)
        up = choose_config(t * k, e, 2 * i, h, "bf16", "silu_and_mul", True)
        down = choose_config(t * k, e, h, i, "bf16", None, False)
        for dyn in (False, True):
            for label, fn in (
                    ("up", lambda: moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=up_out,
                                                    config=dataclasses.replace(up, dynamic=dyn))),
                    ("down", lambda: moe.grouped_gemm(mid, w2, plan, gather=False, out=out,
                                                      config=dataclasses.replace(down, dynamic=dyn)))):
                print(f"LAUNCH {model} {label} {'dynamic' if dyn else 'static'} (profiled twice)", flush=True)
                for _ in range(2):
                    fn()
                    torch.cuda.synchronize()
        w1 = w2 = x = mid = out = up_out = None
        torch.cuda.empty_cache()


{"heuristic": heuristic, "causes": causes, "dynamic": dynamic}[MODE]()
