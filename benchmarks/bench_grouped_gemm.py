"""Both expert GEMMs of an MoE layer: staticbatch against its peers, on one GPU, one process.

Per point (model, T, routing): gate/up ``[T*k, H] x [H, 2I]`` (ours: gathered rows, SiLU-and-mul
fused) then down ``[T*k, I] x [I, H]`` (grouped rows), timed as one CUDA graph with the L2
flushed between replays. Ours reads the weights as the MoE layer stores them by default: tiled
(``pack_gate_up(w1, tiled=True)``, ``pack_weight(w2)``, once before timing, as a model does at
load time); ``ours_plain`` in the JSON is the same pair on the weights as given, ``[E, N, K]``.
The two are timed in turns, three medians of ``--reps`` replays each, and each reports the
middle one (``repeats_ms`` holds all three).
Peers, measured here in the same process on the same routing:

- ``torch._grouped_mm`` (PyTorch's CUTLASS sm90 grouped GEMM) on pre-grouped rows, best of
  two weight layouts (``w.transpose(1, 2)`` views and contiguous ``[E, K, N]`` copies); GEMMs
  only (no gather, no activation: less work than ours);
- a per-expert ``torch.mm`` loop over the same grouped rows (skipped where it would take long);
- one dense cuBLAS GEMM pair of the same total size (no irregularity: a ceiling, not a peer).

vLLM's Triton fused_moe times are not measured here (its code cannot be part of this
project); the reference figures of shared/GPU.md, measured on this H200 model, are printed
beside ours at T <= 128.

Roofline floor = max(FLOPs / compute ceiling, bytes / 4.5 TB/s), FLOPs = 6*T*k*H*I, bytes = the
weights of every expert that received a token + activations read and written once. The
compute ceiling is re-measured at the start (cuBLAS bf16 8192^3, after the same 60 ms warm-up
as every timed call) and used unless it falls below shared/GPU.md's 755 TFLOP/s.

The L2 flush (``--flush``) reads a 256 MB buffer between replays by default: that evicts what
the previous replay left in the L2 and leaves clean lines. Writing the buffer instead
(``--flush write``, the method up to commit ``ef46028``) leaves the L2 full of dirty lines whose
write-back to DRAM then falls inside the next timed call; on the H200 that added 4.5-10 us to
every decode point of ours (benchmarks/results/dev_l2_flush_check.json), a cost no decode step
of a real model pays. At T <= 128 ours is also timed with the write flush (``ours_write_flush``
in the JSON), so both figures stay on record.

Run: python benchmarks/bench_grouped_gemm.py [--models a,b] [--ts 1,16] [--routing uniform,skewed] [--flush read]
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch
from common import COMPUTE_CEILING_TFLOPS, MEMORY_CEILING_TBPS, interleaved_ms, save, time_cuda

import staticbatch_moe as moe

MODELS = moe.MODEL_SHAPES
TS = (1, 16, 128, 1024, 4096, 16384)
# vLLM 0.33 Triton fused_moe on this H200 model (shared/GPU.md, uniform routing), ms.
VLLM_MS = {
    ("Mixtral-8x7B", 1): 0.184, ("Mixtral-8x7B", 16): 0.575, ("Mixtral-8x7B", 128): 0.670,
    ("Mixtral-8x7B", 1024): 1.491, ("Mixtral-8x7B", 4096): 5.424, ("Mixtral-8x7B", 16384): 20.283,
    ("Qwen3-30B-A3B", 1): 0.029, ("Qwen3-30B-A3B", 16): 0.190, ("Qwen3-30B-A3B", 128): 0.295,
    ("Qwen3-30B-A3B", 1024): 0.362, ("Qwen3-30B-A3B", 4096): 0.702, ("Qwen3-30B-A3B", 16384): 2.355,
    ("DeepSeek-V3", 1): 0.183, ("DeepSeek-V3", 16): 2.031, ("DeepSeek-V3", 128): 5.122,
    ("DeepSeek-V3", 1024): 6.230, ("DeepSeek-V3", 4096): 9.183, ("DeepSeek-V3", 16384): 27.829,
    ("Qwen3-235B-A22B", 1): 0.096, ("Qwen3-235B-A22B", 16): 0.759, ("Qwen3-235B-A22B", 128): 1.145,
    ("Qwen3-235B-A22B", 1024): 1.322, ("Qwen3-235B-A22B", 4096): 2.939, ("Qwen3-235B-A22B", 16384): 11.092,
    ("GPT-OSS-120B", 1): 0.061, ("GPT-OSS-120B", 16): 0.598, ("GPT-OSS-120B", 128): 1.501,
    ("GPT-OSS-120B", 1024): 1.683, ("GPT-OSS-120B", 4096): 2.495, ("GPT-OSS-120B", 16384): 8.189,
}


def roofline_ms(flops: float, bytes_: float, compute_tflops: float) -> float:
    """The roofline floor in ms: max(FLOPs / compute ceiling, bytes / memory ceiling)."""
    return max(flops / (compute_tflops * 1e12), bytes_ / (MEMORY_CEILING_TBPS * 1e12)) * 1e3


def measure_compute_ceiling() -> float:
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    r = time_cuda(lambda: torch.mm(a, b), reps=20, graph=False)
    return 2 * 8192**3 / (r["median_ms"] * 1e-3) / 1e12


def routing(kind: str, t: int, e: int, k: int, seed: int) -> torch.Tensor:
    g = torch.Generator(device="cuda").manual_seed(seed)
    if kind == "uniform":
        return torch.rand(t, e, device="cuda", generator=g).topk(k, dim=1).indices.to(torch.int32)
    # Zipf-like skew: expert r (in a random order) drawn with probability ~ 1 / (r + 1)^1.2.
    probs = 1.0 / torch.arange(1, e + 1, device="cuda", dtype=torch.float64) ** 1.2
    probs = probs[torch.randperm(e, device="cuda", generator=g)]
    return torch.multinomial(probs.expand(t, e), k, replacement=False, generator=g).to(torch.int32)


def launched_names(classes) -> str:  # type: ignore[no-untyped-def]
    """The kernel names grouped_gemm launches for the heuristic's ``classes``."""
    from staticbatch_moe._gemm_config import launch_classes

    launched, concurrent = launch_classes(classes)
    return (" || " if concurrent else " + ").join(c.config.kernel_name for c in launched)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--ts", default=",".join(map(str, TS)))
    ap.add_argument("--routing", default="uniform,skewed")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--budget-s", type=float, default=500.0, help="stop (and save) after this long")
    ap.add_argument("--name", default="bench_grouped_gemm")
    ap.add_argument("--flush", default="read", choices=("read", "write", "none"),
                    help="how the L2 is flushed between timed replays (see the module docstring)")
    args = ap.parse_args()
    flush = {"read": "read", "write": "write", "none": False}[args.flush]
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("bench_grouped_gemm needs a Hopper GPU (sm_90a); none is available here.")
        return 0
    t0 = time.time()
    measured = measure_compute_ceiling()
    # Never below shared/GPU.md's 755: a hot, clock-limited run must not inflate the efficiencies.
    ceiling = max(measured, COMPUTE_CEILING_TFLOPS)
    print(f"compute ceiling: {ceiling:.0f} TFLOP/s (cuBLAS bf16 8192^3 measured now: {measured:.0f}; GPU.md: "
          f"{COMPUTE_CEILING_TFLOPS:.0f}); memory ceiling {MEMORY_CEILING_TBPS} TB/s")
    rows = []
    hdr = (f"{'model':<16}{'T':>6} {'route':<8}{'ours ms':>9}{'TFLOP/s':>8}{'GB/s':>7}{'eff':>6}"
           f"{'gmm ms':>9}{'x gmm':>7}{'loop ms':>9}{'x loop':>7}{'dense ms':>9}{'vllm*':>7}{'x vllm':>7}{'err':>9}")
    print(hdr)
    for model in args.models.split(","):
        h, i, e, k = MODELS[model]
        w1 = (torch.randn(e, 2 * i, h, device="cuda", dtype=torch.bfloat16) / h**0.5)
        w2 = (torch.randn(e, h, i, device="cuda", dtype=torch.bfloat16) / i**0.5)
        w1p = moe.pack_gate_up(w1, tiled=True)  # the layer's default storage
        w2p = moe.pack_weight(w2)
        w1p_plain = moe.pack_gate_up(w1)
        w1t_views, w2t_views = w1.transpose(1, 2), w2.transpose(1, 2)  # [E, K, N], K-contiguous
        for t in map(int, args.ts.split(",")):
            for kind in args.routing.split(","):
                if time.time() - t0 > args.budget_s:
                    print(f"time budget of {args.budget_s}s spent: stopping here")
                    break
                ids = routing(kind, t, e, k, seed=t)
                plan = moe.route_plan(ids, e)
                x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
                counts = plan.expert_counts.tolist()
                active = sum(1 for c in counts if c)
                m = t * k
                flops = 6 * m * h * i
                # weights of active experts; x read, mid written and read, y written (bf16)
                bytes_ = active * 3 * h * i * 2 + (t * h + 2 * m * i + m * h) * 2
                floor_ms = roofline_ms(flops, bytes_, ceiling)
                # Ours, checked once against the float32 reference.
                mid = torch.empty(m, i, device="cuda", dtype=torch.bfloat16)
                y = torch.empty(m, h, device="cuda", dtype=torch.bfloat16)

                def ours() -> None:
                    moe.grouped_gemm(x, w1p, plan, activation="silu_and_mul", out=mid)
                    moe.grouped_gemm(mid, w2p, plan, gather=False, out=y, programmatic_launch=True)  # as the layer does

                def ours_plain() -> None:
                    moe.grouped_gemm(x, w1p_plain, plan, activation="silu_and_mul", out=mid)
                    moe.grouped_gemm(mid, w2, plan, gather=False, out=y, programmatic_launch=True)

                mid.fill_(float("nan"))
                y.fill_(float("nan"))
                ours()
                if t <= 4096:
                    ref_mid = moe.grouped_gemm_reference(x, w1p, plan, activation="silu_and_mul")
                    ref = moe.grouped_gemm_reference(ref_mid, w2, plan, gather=False)
                    d = (y.double() - ref.double()).norm() / ref.double().norm()
                    err = float(d) if torch.isfinite(y).all() else float("inf")
                else:
                    err = float("nan")  # the reference loop would dominate the run; checked by the tests
                y_tiled = y.clone()
                y.fill_(float("nan"))
                ours_plain()
                plain_same = bool(torch.equal(y, y_tiled))  # the two layouts compute the same bits
                del y_tiled
                # Three medians of each, taking turns: the two layouts see the same drift of the machine.
                rep = interleaved_ms({"tiled": ours, "plain": ours_plain}, repeats=3, reps=args.reps, flush_l2=flush)
                r_ours = {"median_ms": sorted(rep["tiled"])[1], "repeats_ms": rep["tiled"]}
                r_ours_plain = {"median_ms": sorted(rep["plain"])[1], "repeats_ms": rep["plain"]}
                r_ours_write = time_cuda(ours, reps=args.reps, flush_l2="write") if t <= 128 else None
                # Peers on the same grouped rows.
                xg = x[plan.gather_idx.long()].contiguous()
                offs = plan.expert_starts[1:].to(torch.int32)
                mid_g = torch.randn(m, i, device="cuda", dtype=torch.bfloat16)
                r_gmm = None
                if hasattr(torch, "_grouped_mm"):
                    best = None
                    for layout in ("view", "contiguous"):
                        b1 = w1t_views if layout == "view" else w1t_views.contiguous()
                        b2 = w2t_views if layout == "view" else w2t_views.contiguous()
                        try:
                            def gmm(b1=b1, b2=b2) -> None:
                                torch._grouped_mm(xg, b1, offs=offs)
                                torch._grouped_mm(mid_g, b2, offs=offs)

                            r = time_cuda(gmm, reps=args.reps, flush_l2=flush)
                            if best is None or r["median_ms"] < best["median_ms"]:
                                best = dict(r, layout=layout)
                        except Exception as exc:  # report, keep going
                            print(f"  torch._grouped_mm ({layout}) failed: {exc}")
                        del b1, b2
                    r_gmm = best
                starts = plan.expert_starts.tolist()
                r_loop = None
                if active <= 64 or t <= 1024:
                    def loop() -> None:
                        for ex in range(e):
                            lo, hi = starts[ex], starts[ex + 1]
                            if hi > lo:
                                torch.mm(xg[lo:hi], w1t_views[ex])
                                torch.mm(mid_g[lo:hi], w2t_views[ex])

                    r_loop = time_cuda(loop, reps=max(5, args.reps // 2), flush_l2=flush)
                wd1 = torch.randn(h, 2 * i, device="cuda", dtype=torch.bfloat16)
                wd2 = torch.randn(i, h, device="cuda", dtype=torch.bfloat16)
                r_dense = time_cuda(lambda: (torch.mm(xg, wd1), torch.mm(mid_g, wd2)), reps=args.reps, flush_l2=flush)
                ms = r_ours["median_ms"]
                row = {
                    "model": model, "T": t, "routing": kind, "H": h, "I": i, "E": e, "k": k,
                    "active_experts": active, "max_rows": max(counts), "flops": flops, "bytes": bytes_,
                    "floor_ms": floor_ms, "ours": r_ours, "ours_plain": r_ours_plain, "plain_bit_identical": plain_same,
                    "ours_write_flush": r_ours_write, "efficiency": floor_ms / ms,
                    "tflops": flops / ms / 1e9, "gbps": bytes_ / ms / 1e6, "rel_err": err,
                    "grouped_mm": r_gmm, "loop": r_loop, "dense": r_dense,
                    "vllm_gpu_md_ms": VLLM_MS.get((model, t)) if kind == "uniform" else None,
                    # The heuristic's tile classes for ours (tiled weights), heaviest first, joined by
                    # " + " (one name: one class), or " || " where the two share the SMs (concurrent
                    # classes), as grouped_gemm launches them (fitted tiles "_dyn": dynamic tiles);
                    # kernel names of tiled-weight tiles end in "_wt".
                    "config_gate_up": launched_names(moe.choose_tile_classes(
                        m, e, 2 * i, h, "bf16", "silu_and_mul", True, num_tokens=t, tiled_w=True)),
                    "config_down": launched_names(moe.choose_tile_classes(
                        m, e, h, i, "bf16", None, False, num_tokens=t, tiled_w=True)),
                }
                rows.append(row)
                fmt = lambda r: f"{r['median_ms']:>9.3f}" if r else f"{'-':>9}"  # noqa: E731
                ratio = lambda r: f"{r['median_ms'] / ms:>7.2f}" if r else f"{'-':>7}"  # noqa: E731
                v = row["vllm_gpu_md_ms"]
                print(f"{model:<16}{t:>6} {kind:<8}{ms:>9.3f}{row['tflops']:>8.0f}{row['gbps']:>7.0f}{row['efficiency']:>6.2f}"
                      f"{fmt(r_gmm)}{ratio(r_gmm)}{fmt(r_loop)}{ratio(r_loop)}{fmt(r_dense)}"
                      f"{(f'{v:>7.3f}' if v else f'{chr(45):>7}')}{(f'{v / ms:>7.2f}' if v else f'{chr(45):>7}')}{err:>9.1e}",
                      flush=True)
            else:
                continue
            break
        w1 = w2 = w1p = w2p = w1p_plain = w1t_views = w2t_views = None  # free before the next model
        torch.cuda.empty_cache()
    uni = [r for r in rows if r["routing"] == "uniform"]
    summary = {}
    if uni:
        effs = [r["efficiency"] for r in uni]
        gm = lambda xs: math.exp(sum(map(math.log, xs)) / len(xs))  # noqa: E731
        summary["uniform_geomean_efficiency"] = gm(effs)
        summary["uniform_min_efficiency"] = min(effs)
        summary["uniform_geomean_efficiency_plain_weights"] = gm([r["floor_ms"] / r["ours_plain"]["median_ms"] for r in uni])
        summary["all_plain_bit_identical"] = all(r["plain_bit_identical"] for r in rows)
        # For reference only (the floors use the ceiling above): the same against the cuBLAS rate
        # measured in this run, where that is lower than GPU.md's (a clock-limited machine).
        eff_measured = [roofline_ms(r["flops"], r["bytes"], measured) / r["ours"]["median_ms"] for r in uni]
        summary["uniform_geomean_efficiency_at_measured_ceiling"] = gm(eff_measured)
        sp = [r["grouped_mm"]["median_ms"] / r["ours"]["median_ms"] for r in uni if r["grouped_mm"]]
        if sp:
            summary["uniform_geomean_speedup_vs_grouped_mm"] = gm(sp)
            summary["uniform_min_speedup_vs_grouped_mm"] = min(sp)
        vl = [r["vllm_gpu_md_ms"] / r["ours"]["median_ms"] for r in uni if r["vllm_gpu_md_ms"] and r["T"] <= 128]
        if vl:
            summary["uniform_t_le_128_min_ratio_vllm_over_ours"] = min(vl)
        vw = [r["vllm_gpu_md_ms"] / r["ours_write_flush"]["median_ms"] for r in uni
              if r["vllm_gpu_md_ms"] and r.get("ours_write_flush")]
        if vw:
            summary["uniform_t_le_128_min_ratio_vllm_over_ours_write_flush"] = min(vw)
    print("summary:", summary)
    path = save(args.name, rows, {"compute_ceiling_tflops": ceiling, "compute_ceiling_measured_tflops": measured,
                                  "memory_ceiling_tbps": MEMORY_CEILING_TBPS, "l2_flush": args.flush,
                                  "summary": summary})
    print(f"saved {path} in {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
