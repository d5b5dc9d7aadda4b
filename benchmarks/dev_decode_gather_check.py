"""What the token gather costs the gate/up GEMM at T = 1 (dev check on the H200, not a test).

dev_decode_tiles_read_check_alone.json: the gate/up GEMM at T = 1 takes 7-11 % longer than
reading its weight tiles alone (Mixtral-8x7B 118.5 against 106.9 us), the down GEMM only a few us
more. The gate/up GEMM gathers its token rows in the ring's loop (cp.async, every producer thread
at every stage). This times the heuristic's gate/up tile as called (``cp_async``), with the TMA
gather (``tma``: one TMA per token row, a producer warp), and on pre-gathered rows
(``no_gather``: the same tile with ``gather=False`` on ``x[gather_idx]``, which reads the rows by a
TMA box), beside the tiles read alone (``tiles``). Outputs of the GEMM variants are compared bit
for bit. Timing as bench_grouped_gemm, five interleaved repeats.
Result: benchmarks/results/dev_decode_gather_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_decode_gather_check.py
"""
import dataclasses
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import layer_classes, layer_point, save, time_interleaved
from dev_decode_tiles_read_check import SOURCE, tiles_of

import staticbatch as sb
import staticbatch_moe as moe


def main() -> int:
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("dev_decode_gather_check needs a Hopper GPU")
        return 0
    sms = sb.device_properties(0).num_sms
    read_tiles = sb.load(sb.compile_source(SOURCE, "read_tiles"), 0)
    rows = []
    for t in (1, 16):
        for model in ("Qwen3-30B-A3B", "GPT-OSS-120B", "Qwen3-235B-A22B", "Mixtral-8x7B", "DeepSeek-V3"):
            w1p, _, x, plan = layer_point(model, t, "uniform")
            _, i, _, _ = moe.MODEL_SHAPES[model]
            cfg = layer_classes(model, t)["up"][0].config
            counts = torch.diff(plan.expert_starts).tolist()
            active = [e for e, c in enumerate(counts) if c > 0]
            tl = torch.tensor(tiles_of(w1p.packed, active, cfg.block_n), dtype=torch.int64, device="cuda").flatten()
            chunk = cfg.block_n * 128
            grouped = x[plan.gather_idx[: plan.num_rows].long().clamp(min=0)].contiguous()
            variants = {"cp_async": (x, cfg, True), "tma": (x, cfg.with_gather_mode("tma"), True),
                        "no_gather": (grouped, dataclasses.replace(cfg, gather=False, gather_mode="cp_async"), False)}
            outs, calls = {}, {}
            for name, (a, c, gather) in variants.items():
                out = torch.full((plan.num_rows, i), float("nan"), device="cuda", dtype=torch.bfloat16)

                def fn(a=a, c=c, gather=gather, out=out, w1p=w1p, plan=plan) -> None:  # type: ignore[no-untyped-def]
                    moe.grouped_gemm(a, w1p, plan, gather=gather, activation="silu_and_mul", out=out, config=c)
                fn()
                outs[name] = out
                calls[name] = fn
            torch.cuda.synchronize()
            same = {n: bool(torch.equal(outs[n], outs["cp_async"])) for n in outs}
            calls["tiles"] = lambda tl=tl, chunk=chunk: read_tiles.launch(
                sms, 32, 12 * chunk, [tl, np.int32(tl.numel() // 2), np.int32(12), np.int32(0), np.int32(12),
                                      np.int32(chunk)])
            ms = time_interleaved(calls, repeats=5, reps=20)
            row = {"model": model, "T": t, "config": cfg.kernel_name, "bit_identical": same,
                   "us": {n: [round(v * 1e3, 2) for v in vals] for n, vals in ms.items()}}
            row["median_us"] = {n: float(np.median(v)) for n, v in row["us"].items()}
            rows.append(row)
            print(model, t, cfg.kernel_name, ", ".join(f"{n} {v:.1f}" for n, v in row["median_us"].items()), same,
                  flush=True)
            del w1p, x, plan, outs, calls, grouped
            torch.cuda.empty_cache()
    save("dev_decode_gather_check", rows, {"note": "gate/up GEMM alone at T = 1 and 16, us: the token gather by "
                                           "cp.async, by TMA, none (pre-gathered rows); the tiles read alone"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
