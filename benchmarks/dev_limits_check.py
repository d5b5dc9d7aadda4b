"""What limits the grid points below the issue's floors, on the H200 (dev check, not a test).

Three parts, each a list of rows in benchmarks/results/dev_limits_check.json:

- ``decode``: where the time of a T = 1 layer goes, by differences (CUDA graph, L2 read-flushed,
  median of 30): a graph of one empty kernel; each GEMM alone; the same GEMM on a K = 64 copy
  of the problem (same plan, tiles and launch, 1/12 to 1/64 of the weight bytes: what is left is
  fixed cost); gate/up with 64-wide weight tiles (twice the tiles, every SM busy); both GEMMs as
  the layer runs them (down launched programmatically).
- ``t4096``: Qwen3-30B-A3B at T = 4096, where the gate/up GEMM needs the staged gather's copy.
  The bandwidth of a plain fill and copy of the staged bytes, torch's ``index_select`` of the
  grouped rows, and the gate/up GEMM gathering (staged and cp.async) against the same tiles on
  pre-grouped rows, plus other tiles on pre-grouped rows; interleaved repeats (median of 10,
  L2 read-flushed). Outputs are checked bit-identical across tiles and gather methods.
- ``clock``: SM clock and board power (nvidia-smi every 50 ms) while cuBLAS 8192^3 and our
  layer GEMMs run back to back for 1.5 s.

The hardware counters of the ``t4096`` tiles come from Nsight Compute on the ``ncu`` part, which
runs each pre-grouped configuration once::

    ncu --clock-control none -k regex:sb_grouped_gemm --section SpeedOfLight \\
        --section MemoryWorkloadAnalysis --section WarpStateStats --csv --page details \\
        python benchmarks/dev_limits_check.py --parts ncu

Run::

    PYTHONPATH=. python benchmarks/dev_limits_check.py [--parts decode,t4096,clock]
"""
import argparse
import dataclasses
import os
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import LayerGemms, save, time_cuda

import staticbatch_moe as moe
from staticbatch_moe._gemm_config import _normal_config, with_store_warps


def us(fn, flush="read", reps=30) -> float:  # type: ignore[no-untyped-def]
    return round(1000 * time_cuda(fn, reps=reps, flush_l2=flush)["median_ms"], 2)


def decode_rows() -> list:
    rows = []
    z = torch.zeros(1, device="cuda")
    for model in ("Qwen3-30B-A3B", "GPT-OSS-120B", "Qwen3-235B-A22B"):
        torch.manual_seed(0)
        g = LayerGemms(model, 1)
        h, i, e = g.h, g.i, g.e
        # K = 64 stand-ins of the weights and inputs.
        w1s = moe.pack_gate_up(torch.randn(e, 2 * i, 64, device="cuda", dtype=torch.bfloat16))
        w2s = torch.randn(e, h, 64, device="cuda", dtype=torch.bfloat16)
        xs = torch.randn(1, 64, device="cuda", dtype=torch.bfloat16)
        mids = torch.randn(g.k, 64, device="cuda", dtype=torch.bfloat16)
        cu, cd = g.chosen("up"), g.chosen("down")
        mid, up = g.call("up", cu)
        y, down = g.call("down", cd)
        cu64 = dataclasses.replace(cu, block_n=64)
        calls = {
            "empty_kernel": lambda: z.add_(0),
            "gate_up": up,
            "gate_up_k64": lambda: moe.grouped_gemm(xs, w1s, g.plan, activation="silu_and_mul", out=mid, config=cu),
            "gate_up_bn64": lambda: moe.grouped_gemm(g.x, g.w1, g.plan, activation="silu_and_mul", out=mid, config=cu64),
            "down": down,
            "down_k64": lambda: moe.grouped_gemm(mids, w2s, g.plan, gather=False, out=y, config=cd),
            "layer": lambda: (moe.grouped_gemm(g.x, g.w1, g.plan, activation="silu_and_mul", out=mid, config=cu),
                              moe.grouped_gemm(mid, g.w2, g.plan, gather=False, out=y, config=cd,
                                               programmatic_launch=True)),
        }
        active = sum(1 for c in g.plan.expert_counts.tolist() if c)
        row = {"model": model, "T": 1, "gate_up_config": cu.kernel_name, "down_config": cd.kernel_name,
               "gate_up_weight_mb": round(active * 2 * i * h * 2 / 1e6, 1), "down_weight_mb": round(active * h * i * 2 / 1e6, 1)}
        for name, fn in calls.items():
            row[name + "_us"] = us(fn)
        print(row, flush=True)
        rows.append(row)
    return rows


def t4096_rows() -> list:
    rows = []
    torch.manual_seed(0)
    g = LayerGemms("Qwen3-30B-A3B", 4096)
    m, h = g.t * g.k, g.h
    staged_bytes = m * h * 2
    buf = torch.empty(staged_bytes // 2, dtype=torch.bfloat16, device="cuda")
    src = torch.randn(staged_bytes // 2, dtype=torch.bfloat16, device="cuda")
    xg = torch.empty(m, h, dtype=torch.bfloat16, device="cuda")
    idx = g.plan.gather_idx.long()
    rows.append({"part": "bandwidth", "bytes": staged_bytes, "fill_us": us(lambda: buf.fill_(1.0), reps=20),
                 "copy_us": us(lambda: buf.copy_(src), reps=20),
                 "index_select_us": us(lambda: torch.index_select(g.x, 0, idx, out=xg), reps=20)})
    print(rows[-1], flush=True)
    buf = src = None  # free
    torch.index_select(g.x, 0, idx, out=xg)
    for gemm in ("up", "down"):
        act = "silu_and_mul" if gemm == "up" else None
        a = xg if gemm == "up" else g.mid
        w = g.w1 if gemm == "up" else g.w2
        chosen = g.chosen(gemm)
        pre = dataclasses.replace(chosen, gather=False, gather_mode="cp_async")
        cfgs = {
            "heuristic_pregrouped": pre,
            "c2_128x256_sw_pregrouped": with_store_warps(
                dataclasses.replace(_normal_config(128, 256, False, act, "bf16", False), cluster=2)),
            "pp128x192_c2_pregrouped": dataclasses.replace(_normal_config(128, 192, True, act, "bf16", False), cluster=2),
        }
        calls, outs = {}, {}
        for name, cfg in cfgs.items():
            out = torch.full((m, g.i if gemm == "up" else h), float("nan"), device="cuda", dtype=torch.bfloat16)
            calls[name] = (lambda out=out, cfg=cfg: moe.grouped_gemm(a, w, g.plan, gather=False, activation=act,
                                                                      out=out, config=cfg))
            outs[name] = (out, cfg)
        if gemm == "up":
            for mode in ("staged", "cp_async"):
                cfg = chosen.with_gather_mode(mode)
                out, fn = g.call("up", cfg)
                calls[f"heuristic_{mode}"] = fn
                outs[f"heuristic_{mode}"] = (out, cfg)
        for fn in calls.values():
            fn()
        base = outs["heuristic_pregrouped"][0]
        ms = {n: [] for n in calls}
        for _ in range(3):
            for n, fn in calls.items():
                ms[n].append(round(time_cuda(fn, reps=10, flush_l2="read")["median_ms"], 4))
        for n, (out, cfg) in outs.items():
            rows.append({"part": "gemm", "gemm": gemm, "variant": n, "config": cfg.kernel_name, "ms": ms[n],
                         "bitwise_equal": bool(torch.equal(out, base))})
            print(rows[-1], flush=True)
    return rows


def ncu_run() -> None:
    torch.manual_seed(0)
    g = LayerGemms("Qwen3-30B-A3B", 4096)
    xg = g.x[g.plan.gather_idx.long()].contiguous()
    for gemm, a, w, act in (("up", xg, g.w1, "silu_and_mul"), ("down", g.mid, g.w2, None)):
        pre = dataclasses.replace(g.chosen(gemm), gather=False, gather_mode="cp_async")
        for cfg in (pre, with_store_warps(dataclasses.replace(_normal_config(128, 256, False, act, "bf16", False), cluster=2)),
                    dataclasses.replace(_normal_config(128, 192, True, act, "bf16", False), cluster=2)):
            moe.grouped_gemm(a, w, g.plan, gather=False, activation=act, config=cfg)
            torch.cuda.synchronize()
            print(gemm, cfg.kernel_name, flush=True)


def sample_clock(fn, seconds: float = 1.5) -> dict:  # type: ignore[no-untyped-def]
    q = "clocks.sm,power.draw,power.limit,clocks_event_reasons.active"
    p = subprocess.Popen(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader,nounits", "-lms", "50"],
                         stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    t0, n = time.time(), 0
    while time.time() - t0 < seconds:
        fn()
        n += 1
        if n % 20 == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    p.terminate()
    lines = [[v.strip() for v in ln.split(",")] for ln in p.communicate()[0].splitlines() if ln.count(",") == 3]
    busy = lines[len(lines) // 3:]  # past the ramp
    sm = sorted(float(v[0]) for v in busy)
    pw = sorted(float(v[1]) for v in busy)
    return {"sm_mhz_median": sm[len(sm) // 2], "sm_mhz_min": sm[0], "power_w_median": pw[len(pw) // 2],
            "power_limit_w": float(busy[0][2]), "throttle_reasons": sorted({v[3] for v in busy}), "samples": len(busy)}


def clock_rows() -> list:
    rows = []
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    rows.append({"what": "cuBLAS bf16 8192^3", **sample_clock(lambda: torch.mm(a, b))})
    print(rows[-1], flush=True)
    a = b = None  # free
    for model, t in (("Qwen3-30B-A3B", 4096), ("Mixtral-8x7B", 16384), ("DeepSeek-V3", 4096), ("Qwen3-30B-A3B", 1)):
        torch.manual_seed(0)
        g = LayerGemms(model, t)
        mid, up = g.call("up", g.chosen("up"))
        y = torch.empty(t * g.k, g.h, device="cuda", dtype=torch.bfloat16)
        cd = g.chosen("down")

        def layer() -> None:
            up()
            moe.grouped_gemm(mid, g.w2, g.plan, gather=False, out=y, config=cd, programmatic_launch=True)

        layer()
        rows.append({"what": f"{model} T = {t}, both GEMMs", **sample_clock(layer)})
        print(rows[-1], flush=True)
        g = None  # free
        torch.cuda.empty_cache()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="decode,t4096,clock")
    ap.add_argument("--name", default="dev_limits_check")
    args = ap.parse_args()
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("dev_limits_check needs a Hopper GPU (sm_90a); none is available here.")
        return 0
    parts = args.parts.split(",")
    if parts == ["ncu"]:
        ncu_run()
        return 0
    runs = {"decode": decode_rows, "t4096": t4096_rows, "clock": clock_rows}
    result = {p: runs[p]() for p in parts}
    save(args.name, [], {"note": "us (decode), ms (t4096 gemm rows: three interleaved repeats), read flush", **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
