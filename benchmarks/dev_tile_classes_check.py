"""Tile classes (a tile height per expert) against one configuration for every expert, on the
H200 (dev check, not a test).

Part 1 times both GEMMs of a layer (gate/up with the staged or cp.async gather, then down) at the
points where the heuristic's average expert gets swap-mode tiles, for uniform and skewed routing,
three ways: the swap configuration for every expert ("base"), 64-row ping-pong tiles for every
expert ("pp"), and the two as tile classes, ping-pong above 64 rows ("swap+pp"); every result is
checked against the float32 reference first. Part 2 measures what the staged gather costs: the
gate/up GEMM with the staged gather, the same tiles on pre-grouped rows, torch's own gather copy
(``index_select``) and a plain copy of the same bytes. CUDA-graph replays, L2 flushed, median of
10. The result goes to benchmarks/results/dev_tile_classes_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_tile_classes_check.py
"""
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grouped_gemm import MODELS, routing
from common import layer_weights, save, time_cuda

import staticbatch_moe as moe
from staticbatch_moe import _gemm_config as cm

POINTS = [("DeepSeek-V3", 1024), ("GPT-OSS-120B", 1024), ("Mixtral-8x7B", 128), ("DeepSeek-V3", 512),
          ("GPT-OSS-120B", 512), ("Qwen3-30B-A3B", 512)]
COPY_POINTS = [("Qwen3-30B-A3B", 16384), ("DeepSeek-V3", 16384), ("Qwen3-30B-A3B", 4096)]


def variants(h: int, i: int, e: int, m: int) -> dict:
    sw_up = cm.choose_config(m, e, 2 * i, h, "bf16", "silu_and_mul", True)
    sw_dn = cm.choose_config(m, e, h, i, "bf16", None, False)
    pp_up = cm._prefill_config(64, cm._wide_tile(2 * i), "silu_and_mul", "bf16", True, h)
    pp_dn = cm._prefill_config(64, cm._wide_tile(h), None, "bf16", False, i)

    def classes(pp: cm.GemmConfig, base: cm.GemmConfig):  # type: ignore[no-untyped-def]
        return [cm.TileClass(pp, 64, None), cm.TileClass(base, 0, 64)] if base.swap_ab else base

    return {"base": (sw_up, sw_dn), "pp": (pp_up, pp_dn), "swap+pp": (classes(pp_up, sw_up), classes(pp_dn, sw_dn))}


def main() -> None:
    rows = []
    for model, t in POINTS:
        h, i, e, k = MODELS[model]
        torch.manual_seed(0)
        w1p, w2 = layer_weights(h, i, e)
        m = t * k
        vs = variants(h, i, e, m)
        for kind in ("uniform", "skewed"):
            plan = moe.route_plan(routing(kind, t, e, k, seed=t), e)
            x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
            mid = torch.empty(m, i, device="cuda", dtype=torch.bfloat16)
            y = torch.empty(m, h, device="cuda", dtype=torch.bfloat16)

            def run(up, dn) -> None:  # type: ignore[no-untyped-def]
                moe.grouped_gemm(x, w1p, plan, activation="silu_and_mul", out=mid, config=up)
                moe.grouped_gemm(mid, w2, plan, gather=False, out=y, config=dn, programmatic_launch=True)

            ref = moe.grouped_gemm_reference(moe.grouped_gemm_reference(x, w1p, plan, activation="silu_and_mul"),
                                             w2, plan, gather=False)
            res = {"model": model, "t": t, "routing": kind, "base_up": vs["base"][0].kernel_name,
                   "base_down": vs["base"][1].kernel_name}
            for rep in (1, 2):
                for name, (up, dn) in vs.items():
                    y.fill_(float("nan"))
                    run(up, dn)
                    err = float((y.double() - ref.double()).norm() / ref.double().norm())
                    if not err < 1e-2:
                        raise RuntimeError(f"{model} T={t} {kind} {name}: error {err}")
                    res[f"{name}{rep}_ms"] = round(time_cuda(lambda: run(up, dn), reps=10, flush_l2=True)["median_ms"], 4)
            print(res, flush=True)
            rows.append(res)
    for model, t in COPY_POINTS:
        h, i, e, k = MODELS[model]
        w1p = moe.pack_gate_up(torch.randn(e, 2 * i, h, device="cuda", dtype=torch.bfloat16) / h**0.5)
        plan = moe.route_plan(routing("uniform", t, e, k, seed=t), e)
        x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        m = t * k
        mid = torch.empty(m, i, device="cuda", dtype=torch.bfloat16)
        cfg = cm.choose_config(m, e, 2 * i, h, "bf16", "silu_and_mul", True)
        idx = plan.gather_idx.long()
        xg = x[idx].contiguous()
        buf = torch.empty_like(xg)
        ng = dataclasses.replace(cfg, gather=False, gather_mode="cp_async")

        def ms(fn) -> float:  # type: ignore[no-untyped-def]
            return round(time_cuda(fn, reps=10, flush_l2=True)["median_ms"], 4)

        res = {"model": model, "t": t, "gate_up_config": cfg.kernel_name,
               "staged_ms": ms(lambda: moe.grouped_gemm(x, w1p, plan, activation="silu_and_mul", out=mid, config=cfg)),
               "pregrouped_ms": ms(lambda: moe.grouped_gemm(xg, w1p, plan, gather=False, activation="silu_and_mul",
                                                            out=mid, config=ng)),
               "index_select_ms": ms(lambda: torch.index_select(x, 0, idx, out=xg)),
               "copy_same_bytes_ms": ms(lambda: buf.copy_(xg))}
        print(res, flush=True)
        rows.append(res)
    save("dev_tile_classes_check", rows, {"note": __doc__.split("\n\n")[1].replace("\n", " ")})


if __name__ == "__main__":
    main()
