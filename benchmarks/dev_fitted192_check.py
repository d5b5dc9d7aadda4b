"""Fitted swap tiles of 160 and 192 tokens, and where the 256-token tile's deficit lies (dev check on
the H200, not a test).

The fitted 256-token tile ran 13-16 % behind the 128-token one at equal work (tenth and twelfth
sessions) and no cause was found in its ring depth, its main-loop instantiations, its accumulator
or its shared-memory base. Two questions:

1. Is it the 256-row token stage itself? ``-DSB_DEV_FITTED_XCAP=128`` builds the 256-token tile
   with a 128-row token stage and main loops up to N = 128 (only valid where no tile has more than
   128 rows: the exact routing below). Same kernel code as the 128-token tile at 4 stages except
   BLOCK_M = 256 in the tile arithmetic.
2. Do 160- and 192-token fitted tiles (5 and 4 stages) keep the 128-token tile's speed? At T = 4096
   DeepSeek-V3 and GPT-OSS-120B experts get 92-165 rows under uniform routing, so a 192-token tile
   holds every expert in one m-block (each weight tile streamed once, no partial tile), and the
   Qwen3 experts (256 +- 40 rows) in two.

Each GEMM alone, in one process: exact routing (128 rows per expert) at DeepSeek-V3 and GPT-OSS
T = 4096, and the benchmark's uniform and skewed routing at T = 4096 for four models. Three
interleaved repeats of a median of 10 replays, L2 read-flushed. Outputs are checked against the
float32 reference (relative norm error) and against the 128-token tile (bit-identical or not).
Result: benchmarks/results/dev_fitted192_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_fitted192_check.py
"""
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_grouped_gemm import routing
from common import exact_routing, layer_weights, save, time_interleaved

import staticbatch as sb
import staticbatch_moe as moe
import staticbatch_moe.gemm as gemm_mod
from staticbatch_moe._gemm_config import choose_tile_classes, fitted_config, kernel_source

_KERNELS: dict[int, dict] = {0: {}, 1: {}}


def use(v: int) -> None:
    os.environ["STATICBATCH_NVRTC_OPTIONS"] = "-DSB_DEV_FITTED_XCAP=128" if v else ""
    gemm_mod._kernels = _KERNELS[v]


PTS = [("DeepSeek-V3", 4096, "exact"), ("GPT-OSS-120B", 4096, "exact")]
PTS += [(m, 4096, "uniform") for m in ("DeepSeek-V3", "GPT-OSS-120B", "Qwen3-235B-A22B", "Qwen3-30B-A3B")]
PTS += [(m, 4096, "skewed") for m in ("DeepSeek-V3", "GPT-OSS-120B")]


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.float() - ref.float()).norm() / ref.float().norm())


def main() -> None:
    variants = {"f128s6": (128, None, 0), "f128s4": (128, 4, 0), "f160": (160, None, 0), "f192": (192, None, 0),
                "f256s4": (256, None, 0), "f256cap128": (256, None, 1)}

    def cfg_of(name: str, act, gather: bool):  # type: ignore[no-untyped-def]
        bm, stages, _ = variants[name]
        c = fitted_config(bm, act, "bf16", gather)
        return dataclasses.replace(c, stages=stages) if stages else c

    todo: dict[int, set] = {0: set(), 1: set()}
    for model, t, _ in PTS:
        h, i, e, k = moe.MODEL_SHAPES[model]
        for act, gather, n, kk in (("silu_and_mul", True, 2 * i, h), (None, False, h, i)):
            todo[0] |= {c.config for c in choose_tile_classes(t * k, e, n, kk, "bf16", act, gather, num_tokens=t)}
            for name, (_, _, v) in variants.items():
                todo[v].add(cfg_of(name, act, gather))
    for v in (0, 1):
        use(v)
        sb.compile_many([(kernel_source(c), c.kernel_name) for c in todo[v]])
    use(0)

    rows = []
    for model, t, rt in PTS:
        h, i, e, k = moe.MODEL_SHAPES[model]
        torch.manual_seed(0)
        w1, w2 = layer_weights(h, i, e)
        x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        mid = torch.randn(t * k, i, device="cuda", dtype=torch.bfloat16)
        ids = exact_routing(t, e, k) if rt == "exact" else routing(rt, t, e, k, seed=t)
        plan = moe.route_plan(ids, e)
        counts = plan.expert_counts.cpu()
        info = {"model": model, "T": t, "routing": rt}
        nz = counts[counts > 0]
        info["rows_min_max"] = [int(nz.min()), int(nz.max())]
        ref_up = moe.grouped_gemm_reference(x, w1, plan, activation="silu_and_mul")
        ref_down = moe.grouped_gemm_reference(mid, w2, plan, gather=False)
        calls = {}
        firsts: dict[str, torch.Tensor] = {}
        names = ["heur"] + [n for n in variants if rt == "exact" or variants[n][2] == 0]
        for gemm in ("up", "down"):
            act, gather = ("silu_and_mul", True) if gemm == "up" else (None, False)
            for name in names:
                v = 0 if name == "heur" else variants[name][2]
                cfg = None if name == "heur" else cfg_of(name, act, gather)
                out = torch.full((t * k, i if gemm == "up" else h), float("nan"), device="cuda", dtype=torch.bfloat16)

                def fn(v=v, out=out, cfg=cfg, gemm=gemm) -> None:  # type: ignore[no-untyped-def]
                    use(v)
                    if gemm == "up":
                        moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=out, config=cfg)
                    else:
                        moe.grouped_gemm(mid, w2, plan, gather=False, out=out, config=cfg)

                fn()
                torch.cuda.synchronize()
                info[f"{gemm}_{name}_rel_err"] = rel_err(out, ref_up if gemm == "up" else ref_down)
                if gemm not in firsts:
                    firsts[gemm] = out.clone()
                else:
                    info[f"{gemm}_{name}_bit_identical_to_heur"] = bool(torch.equal(out, firsts[gemm]))
                if cfg is not None:
                    info[f"{gemm}_{name}_config"] = cfg.kernel_name
                calls[f"{gemm}_{name}"] = fn
        info.update(time_interleaved(calls))
        use(0)
        print(info, flush=True)
        rows.append(info)
        w1 = w2 = x = mid = ref_up = ref_down = None
        calls, firsts = {}, {}
        torch.cuda.empty_cache()
    save("dev_fitted192_check", rows, {"note": "ms, each GEMM alone, three interleaved repeats; f256cap128 is "
                                               "-DSB_DEV_FITTED_XCAP=128 (exact routing only)"})


if __name__ == "__main__":
    main()
