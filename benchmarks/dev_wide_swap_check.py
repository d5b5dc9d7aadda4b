"""Swap-mode tiles of 128 tokens (dev probe on the H200, not a test).

Whether a swap-mode tile of 128 weight rows x 128 tokens (two consumer groups, the weight on
wgmma's M side) keeps up with the heuristic's 64-row ping-pong tiles where each expert has
exactly 128 or 256 rows (exact routing: token t, slot j -> expert (t*k + j) mod E), i.e. with
no partial tiles in either. If it does, a swap tile whose token count follows the expert's
row count would remove the partial-tile cost that dev_exact_counts_check measured. GemmConfig
does not accept block_m = 128 in swap mode; the probe sets it past the check. Three
interleaved repeats of a median of 10 replays, L2 read-flushed; outputs compared with the
heuristic's. Result: benchmarks/results/dev_wide_swap_check.json.
"""
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import exact_routing, layer_weights, save, time_interleaved

import staticbatch_moe as moe
from staticbatch_moe._gemm_config import choose_config


def forced(cfg, **kw):  # type: ignore[no-untyped-def]
    cfg = dataclasses.replace(cfg)
    for key, v in kw.items():
        object.__setattr__(cfg, key, v)
    return cfg


pts = [("DeepSeek-V3", 4096), ("GPT-OSS-120B", 4096), ("Qwen3-235B-A22B", 4096), ("Qwen3-30B-A3B", 4096)]
rows = []
for model, t in pts:
    h, i, e, k = moe.MODEL_SHAPES[model]
    torch.manual_seed(0)
    w1, w2 = layer_weights(h, i, e)
    x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
    mid = torch.randn(t * k, i, device="cuda", dtype=torch.bfloat16)
    m = t * k
    plan = moe.route_plan(exact_routing(t, e, k), e)
    hu = choose_config(m, e, 2 * i, h, "bf16", "silu_and_mul", True)
    hd = choose_config(m, e, h, i, "bf16", None, False)
    sw = moe.GemmConfig(block_m=64, block_n=128, stages=4, swap_ab=True)
    variants = {
        "up_heuristic": ("up", hu),
        "up_swap128_cpa": ("up", forced(dataclasses.replace(sw, activation="silu_and_mul", gather=True), block_m=128)),
        "up_swap128_stg": ("up", forced(dataclasses.replace(sw, activation="silu_and_mul", gather=True), block_m=128,
                                        gather_mode="staged")),
        "down_heuristic": ("down", hd),
        "down_swap128": ("down", forced(sw, block_m=128)),
    }
    info = {"model": model, "T": t, "rows_per_expert": m // e}
    calls, outs = {}, {}
    for name, (g, cfg) in variants.items():
        o = torch.full((m, i if g == "up" else h), float("nan"), device="cuda", dtype=torch.bfloat16)
        if g == "up":
            def fn(cfg=cfg, o=o) -> None:  # type: ignore[no-untyped-def]
                moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=o, config=cfg)
        else:
            def fn(cfg=cfg, o=o) -> None:  # type: ignore[no-untyped-def]
                moe.grouped_gemm(mid, w2, plan, gather=False, out=o, config=cfg)
        try:
            fn()
            torch.cuda.synchronize()
        except Exception as exc:  # noqa: BLE001 - a probe: record and go on
            info[name + "_error"] = repr(exc)[:300]
            continue
        calls[name], outs[name] = fn, o
    for name, o in outs.items():
        ref = outs.get(name.split("_")[0] + "_heuristic")
        info[name + "_rel"] = float((o.float() - ref.float()).norm() / ref.float().norm())
        info[name + "_nan"] = bool(torch.isnan(o).any())
    info.update(time_interleaved(calls))
    print(info, flush=True)
    rows.append(info)
    w1 = w2 = None
    torch.cuda.empty_cache()
save("dev_wide_swap_check", rows, {"note": "ms, exact routing, one GEMM each, three interleaved repeats"})
