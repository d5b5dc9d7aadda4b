"""Our kernel on problems with no irregularity, against cuBLAS and ``torch._grouped_mm`` (dev check
on the H200, not a test).

Every compute-bound point of bench_grouped_gemm runs 5-30 % below the cuBLAS rate, and even
Mixtral-8x7B at T = 16384 (4096 rows per expert, hardly any partial tile) is 5-6 % slower than
one dense cuBLAS GEMM of the same size. This separates the kernel's main loop from the
irregularity: one expert holding every row (a plain 8192^3 GEMM), and Mixtral-8x7B's gate/up at
T = 16384 with exactly 4096 rows per expert on pre-grouped rows, each timed (three interleaved
repeats of a median of 10 replays, L2 read-flushed) with the heuristic's tile and its
neighbours. Then, for the heuristic's tile and cuBLAS, the SM clock and board power sampled by
nvidia-smi while each runs back to back for 1.5 s. ``--ncu`` instead runs each call twice with
no flush (for ncu with locked clocks, to compare tensor-pipe activity at one clock).

Result: benchmarks/results/dev_dense_parity_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_dense_parity_check.py [--ncu]
"""
import os
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import compile_configs, exact_routing, save, time_interleaved

import staticbatch_moe as moe
from staticbatch_moe._gemm_config import GemmConfig, choose_config

CANDIDATES = {
    "128x256_c2_s4": GemmConfig(block_m=128, block_n=256, stages=4, cluster=2),
    "128x256_s4": GemmConfig(block_m=128, block_n=256, stages=4),
    "128x256_c2_sw_s3": GemmConfig(block_m=128, block_n=256, stages=3, cluster=2, store_warps=True),
    "64x256_pp_s4": GemmConfig(block_m=64, block_n=256, stages=4, pingpong=True),
    "128x192_pp_c2_s4": GemmConfig(block_m=128, block_n=192, stages=4, pingpong=True, cluster=2),
    "128x128_pp_s6": GemmConfig(block_m=128, block_n=128, stages=6, pingpong=True),
}


def problems() -> list[tuple[str, int, int, int, int]]:
    """(name, experts, rows per expert, n, k)."""
    return [("dense_8192", 1, 8192, 8192, 8192), ("mixtral_up_4096_per_expert", 8, 4096, 28672, 4096)]


def build(e: int, rows: int, n: int, k: int) -> dict:
    torch.manual_seed(0)
    m = e * rows
    a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(e, n, k, device="cuda", dtype=torch.bfloat16) / k**0.5
    ids = exact_routing(m, e, 1) if e > 1 else torch.zeros(m, 1, device="cuda", dtype=torch.int32)
    plan = moe.route_plan(ids, e)
    # exact_routing puts row r on expert r mod e; grouped rows are a's rows as they are.
    offs = plan.expert_starts[1:].to(torch.int32)
    return {"a": a, "w": w, "plan": plan, "offs": offs, "m": m, "n": n, "k": k, "e": e}


def calls_of(p: dict, configs: dict) -> tuple[dict, dict]:
    a, w, plan = p["a"], p["w"], p["plan"]
    outs, calls = {}, {}
    for name, cfg in configs.items():
        out = torch.full((p["m"], p["n"]), float("nan"), device="cuda", dtype=torch.bfloat16)

        def fn(out=out, cfg=cfg) -> None:
            moe.grouped_gemm(a, w, plan, gather=False, out=out, config=cfg)

        outs[name], calls[name] = out, fn
    w0t = w[0].t()
    calls["cublas_dense"] = lambda: torch.mm(a, w0t)
    wt = w.transpose(1, 2)
    if hasattr(torch, "_grouped_mm"):
        calls["grouped_mm_view"] = lambda: torch._grouped_mm(a, wt, offs=p["offs"])
        wtc = wt.contiguous()
        calls["grouped_mm_contiguous"] = lambda: torch._grouped_mm(a, wtc, offs=p["offs"])
    return outs, calls


def sample_clock(fn, seconds: float = 1.5) -> dict:
    """Median SM clock (MHz) and board power (W) while ``fn`` runs back to back."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    proc = subprocess.Popen(["nvidia-smi", "--query-gpu=clocks.sm,power.draw", "--format=csv,noheader,nounits",
                             "-lms", "50"], stdout=subprocess.PIPE, text=True)
    t0 = time.time()
    n = 0
    while time.time() - t0 < seconds:
        for _ in range(5):
            fn()
            n += 1
        torch.cuda.synchronize()
    proc.terminate()
    lines = proc.communicate()[0].strip().splitlines()
    vals = [tuple(float(x) for x in ln.split(",")) for ln in lines if ln.count(",") == 1]
    vals = vals[2:] or vals  # the first samples may precede the load
    clocks = sorted(v[0] for v in vals)
    power = sorted(v[1] for v in vals)
    return {"sm_mhz_median": clocks[len(clocks) // 2] if clocks else None, "sm_mhz_min": clocks[0] if clocks else None,
            "power_w_median": power[len(power) // 2] if power else None, "calls": n, "samples": len(vals)}


def main() -> None:
    ncu = "--ncu" in sys.argv
    configs = {}
    for name, e, rows, n, k in problems():
        configs[(name, "heuristic")] = choose_config(e * rows, e, n, k, "bf16", None, False)
        for cname, cfg in CANDIDATES.items():
            configs[(name, cname)] = cfg
    print(compile_configs(sorted(set(configs.values()), key=lambda c: c.kernel_name)), flush=True)
    rows_out = []
    for name, e, rows, n, k in problems():
        p = build(e, rows, n, k)
        cfgs = {"heuristic": configs[(name, "heuristic")]}
        cfgs.update({c: configs[(name, c)] for c in CANDIDATES})
        outs, calls = calls_of(p, cfgs)
        if ncu:
            for fn in calls.values():
                fn()
                fn()
            torch.cuda.synchronize()
            continue
        for fn in calls.values():
            fn()
        torch.cuda.synchronize()
        ref = (p["a"].float() @ p["w"][0].float().t()) if e == 1 else None
        info = {"problem": name, "experts": e, "rows_per_expert": rows, "n": n, "k": k,
                "heuristic": cfgs["heuristic"].kernel_name}
        base = outs["heuristic"]
        for cname, out in outs.items():
            info[f"{cname}_bit_identical_to_heuristic"] = bool(torch.equal(out, base))
        if ref is not None:
            info["heuristic_rel_err"] = float((base.float() - ref).norm() / ref.norm())
        del ref
        times = time_interleaved(calls)
        info["ms"] = times
        flops = 2.0 * p["m"] * n * k
        info["tflops_median"] = {c: round(flops / (sorted(v)[len(v) // 2] * 1e-3) / 1e12, 1) for c, v in times.items()}
        info["clock"] = {c: sample_clock(calls[c]) for c in ("heuristic", "cublas_dense", "grouped_mm_contiguous")
                         if c in calls}
        print(info, flush=True)
        rows_out.append(info)
        del p, outs, calls
        torch.cuda.empty_cache()
    if not ncu:
        save("dev_dense_parity_check", rows_out,
             {"note": "ms: three interleaved repeats of a median of 10 replays, L2 read-flushed; clock: nvidia-smi "
                      "every 50 ms while the call runs back to back for 1.5 s"})


if __name__ == "__main__":
    main()
