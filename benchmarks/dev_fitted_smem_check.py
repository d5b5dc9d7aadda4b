"""Does a fitted tile slow down with the shared memory its launch asks for? (dev check on the H200,
not a test)

The fitted swap tile runs slower the more tokens it holds at equal work (dev_fitted192_check.json:
exact routing, 128 rows per expert, DeepSeek-V3 T = 4096 gate/up 4.48 ms for 128 tokens at 4
stages, 5.02 for the 256-token tile with its token stage cut to 128 rows, 5.54 for the 256-token
tile). The cut 256-token tile differed from the 128-token one at 4 stages mainly in the shared
memory it asked for (224 against 160 KB), which sets how much of the SM's 256 KB is left to the L1
cache. This times each GEMM alone on that exact routing with the 128-token tile at 4 stages as
shipped and with its launch asking for 224 KB (``ONE_BLOCK_SMEM`` raised for the call), the
160-token tile the same way, the 128-token tile at 6 stages (224 KB) and the 256-token one.
Three interleaved repeats of a median of 10 replays, L2 read-flushed; outputs bit-identical.
Result: benchmarks/results/dev_fitted_smem_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_fitted_smem_check.py
"""
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import layer_point, save, time_interleaved

import staticbatch as sb
import staticbatch_moe as moe
import staticbatch_moe.gemm as gemm_mod
from staticbatch_moe._gemm_config import MAX_SHARED_BYTES, fitted_config, kernel_source, shared_bytes

SHIPPED_FLOOR = gemm_mod.ONE_BLOCK_SMEM
PTS = [("DeepSeek-V3", 4096), ("GPT-OSS-120B", 4096)]
# name -> (tokens, stages or None for the deepest ring, ask for the most shared memory)
VARIANTS = {"f128s4": (128, 4, False), "f128s4_big": (128, 4, True), "f160": (160, None, False),
            "f160_big": (160, None, True), "f128s6": (128, None, False), "f256s4": (256, None, False)}


def cfg_of(name: str, act, gather: bool):  # type: ignore[no-untyped-def]
    bm, stages, _ = VARIANTS[name]
    c = fitted_config(bm, act, "bf16", gather)
    return dataclasses.replace(c, stages=stages) if stages else c


def main() -> None:
    cfgs = {cfg_of(n, a, g) for n in VARIANTS for a, g in (("silu_and_mul", True), (None, False))}
    sb.compile_many([(kernel_source(c), c.kernel_name) for c in cfgs])
    rows = []
    for model, t in PTS:
        h, i, e, k = moe.MODEL_SHAPES[model]
        w1, w2, x, plan = layer_point(model, t, "exact")
        mid = torch.randn(t * k, i, device="cuda", dtype=torch.bfloat16)
        info = {"model": model, "T": t, "routing": "exact"}
        calls = {}
        firsts: dict = {}
        for gemm in ("up", "down"):
            act, gather = ("silu_and_mul", True) if gemm == "up" else (None, False)
            for name, (_, _, big) in VARIANTS.items():
                cfg = cfg_of(name, act, gather)
                info[f"{gemm}_{name}"] = {"config": cfg.kernel_name, "shared_bytes": shared_bytes(cfg),
                                          "asked": MAX_SHARED_BYTES if big else max(shared_bytes(cfg), SHIPPED_FLOOR)}
                out = torch.full((t * k, i if gemm == "up" else h), float("nan"), device="cuda", dtype=torch.bfloat16)

                def fn(cfg=cfg, out=out, gemm=gemm, big=big) -> None:  # type: ignore[no-untyped-def]
                    gemm_mod.ONE_BLOCK_SMEM = MAX_SHARED_BYTES if big else SHIPPED_FLOOR
                    if gemm == "up":
                        moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=out, config=cfg)
                    else:
                        moe.grouped_gemm(mid, w2, plan, gather=False, out=out, config=cfg)
                    gemm_mod.ONE_BLOCK_SMEM = SHIPPED_FLOOR

                fn()
                torch.cuda.synchronize()
                if gemm in firsts:
                    info[f"{gemm}_{name}"]["bit_identical"] = bool(torch.equal(out, firsts[gemm]))
                else:
                    firsts[gemm] = out.clone()
                calls[f"{gemm}_{name}"] = fn
        info["ms"] = time_interleaved(calls)
        print(info, flush=True)
        rows.append(info)
        calls, firsts = {}, {}
        torch.cuda.empty_cache()
    save("dev_fitted_smem_check", rows, {"note": "ms, each GEMM alone, exact routing, three interleaved repeats"})


if __name__ == "__main__":
    main()
