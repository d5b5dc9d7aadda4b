"""Where the time of tail-row tiles goes (dev check on the H200, not a test): the tail kernel
with its extra wgmmas (SB_TAIL_NO_MMA) and/or its tail epilogue (SB_TAIL_NO_EPI) compiled out
(outputs of tail rows then wrong), against the plain 64-row ping-pong tile. Each GEMM alone,
three interleaved repeats. Result: benchmarks/results/dev_tail_parts_check.json."""
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grouped_gemm import routing
from common import layer_weights, save, time_interleaved

import staticbatch as sb
import staticbatch_moe as moe
import staticbatch_moe.gemm as gemm_mod
from staticbatch_moe._gemm_config import choose_config, kernel_source

OPTS = {"plain": "", "tail": "", "tail_nomma": "-DSB_TAIL_NO_MMA", "tail_noepi": "-DSB_TAIL_NO_EPI",
        "tail_none": "-DSB_TAIL_NO_MMA -DSB_TAIL_NO_EPI", "tail_after": "-DSB_TAIL_AFTER"}
_K: dict = {k: {} for k in ("plain", "tail", "tail_nomma", "tail_noepi", "tail_none", "tail_after")}


def use(name: str) -> None:
    os.environ["STATICBATCH_NVRTC_OPTIONS"] = OPTS[name]
    gemm_mod._kernels = _K[name]


PTS = [("Qwen3-30B-A3B", 4096), ("DeepSeek-V3", 4096)]
if len(sys.argv) > 1:
    OPTS = {k: v for k, v in OPTS.items() if k in sys.argv[1].split(",")}


def cfg_of(model: str, t: int, gemm: str, name: str):  # type: ignore[no-untyped-def]
    h, i, e, k = moe.MODEL_SHAPES[model]
    args = (t * k, e, 2 * i, h, "bf16", "silu_and_mul", True) if gemm == "up" else (t * k, e, h, i, "bf16", None, False)
    c = choose_config(*args)
    return c if name == "plain" else dataclasses.replace(c, tail_rows=16)


def main() -> None:
    for name in OPTS:
        use(name)
        sb.compile_many([(kernel_source(cfg_of(m, t, g, name)), cfg_of(m, t, g, name).kernel_name)
                         for m, t in PTS for g in ("up", "down")])
    rows = []
    for model, t in PTS:
        h, i, e, k = moe.MODEL_SHAPES[model]
        torch.manual_seed(0)
        w1, w2 = layer_weights(h, i, e)
        x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        mid = torch.randn(t * k, i, device="cuda", dtype=torch.bfloat16)
        plan = moe.route_plan(routing("uniform", t, e, k, seed=t), e)
        info = {"model": model, "T": t}
        calls = {}
        for gemm in ("up", "down"):
            for name in OPTS:
                cfg = cfg_of(model, t, gemm, name)
                out = torch.empty(t * k, i if gemm == "up" else h, device="cuda", dtype=torch.bfloat16)

                def fn(cfg=cfg, out=out, gemm=gemm, name=name) -> None:  # type: ignore[no-untyped-def]
                    use(name)
                    if gemm == "up":
                        moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=out, config=cfg)
                    else:
                        moe.grouped_gemm(mid, w2, plan, gather=False, out=out, config=cfg)

                fn()
                calls[f"{gemm}_{name}"] = fn
        info.update(time_interleaved(calls))
        print(info, flush=True)
        rows.append(info)
    save("dev_tail_parts_check", rows, {"note": "ms, uniform routing, each GEMM alone, three interleaved repeats"})


if __name__ == "__main__":
    main()
