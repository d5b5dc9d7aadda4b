"""Development check of the two gather methods of the MoE grouped GEMM: per-row TMA vs cp.async.

Needs an sm_90 GPU; run from the repository root::

    PYTHONPATH=$PWD python3 benchmarks/dev_gather_check.py [--quick]

1. Compiles every configuration it uses, in parallel, before CUDA starts (prints the ptxas
   register and spill figures of the gate/up kernels it times).
2. Correctness through ``staticbatch_moe.grouped_gemm(..., config=GemmConfig(...))`` against
   ``grouped_gemm_reference`` (relative norm error <= 1e-2, output poisoned with NaN first,
   fresh random inputs): top-1 routing with per-expert row counts 1, 15, 16, 17, 63, 64, 65,
   127, 128, 129 (and an empty expert), K = 200 (with a padded row stride) and 2880, N = 320,
   bf16 and fp16, silu_and_mul on and off, both gather methods, tiles 128x256, 64x256
   ping-pong, 128x128 and swap 16x128.
3. Times gate/up (gather + silu_and_mul, bf16, uniform top-k routing) for Mixtral-8x7B,
   Qwen3-30B-A3B and DeepSeek-V3 at T = 4096 and 16384: gather by TMA, gather by cp.async and,
   as the ceiling of the gather, the same GEMM on pre-gathered rows (token rows by the 2-D TMA
   box, no gather), each with 128x256, 64x256 ping-pong and 128x128 tiles; then at T = 16 and
   128 the heuristic's (swap-mode) configuration with either gather method. CUDA-graph replay,
   L2 flushed between replays, median of 10. Prints ms, TFLOP/s and the fraction of 811 TFLOP/s
   and of cuBLAS bf16 8192^3 measured in the same run.

Writes ``$OUT/dev_gather_check.json`` when OUT is set (and benchmarks/results/). A wall-clock
guard stops starting new timings after ~150 s.
"""

from __future__ import annotations

import math
import sys
import time
import traceback

from common import compile_configs, save, time_cuda

import staticbatch_moe as moe
from staticbatch_moe import _gemm_config as cfgmod

T0 = time.time()
BUDGET_S = 150.0
QUICK = "--quick" in sys.argv
CEILING_TFLOPS = 811.0  # the H200's tensor-core ceiling the lead quotes
TOL = 1e-2
EDGE = [1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 0]
N_CHECK = 320
MODES = ("tma", "cp_async")
TIMED_MODELS = ("Mixtral-8x7B", "Qwen3-30B-A3B", "DeepSeek-V3")
LARGE_TS = (4096, 16384)
SMALL_TS = (16, 128)


def log(*args: object) -> None:
    print(*args, flush=True)


def tiles(dtype: str, act: str | None, gather: bool, mode: str = "tma") -> list[cfgmod.GemmConfig]:
    """128x256 (4 stages), 64x256 ping-pong, 128x128: each as deep as shared memory allows."""
    kw = dict(dtype=dtype, activation=act, gather=gather)
    if gather:
        kw["gather_mode"] = mode
    return [
        cfgmod.GemmConfig(128, 256, stages=cfgmod._max_stages(128, 256, 6), **kw),
        cfgmod.GemmConfig(64, 256, stages=cfgmod._max_stages(64, 256, 6, pingpong=True), pingpong=True, **kw),
        cfgmod.GemmConfig(128, 128, stages=cfgmod._max_stages(128, 128, 6), **kw),
    ]


def check_configs() -> list[cfgmod.GemmConfig]:
    out = []
    for dtype in ("bf16", "fp16"):
        for act in (None, "silu_and_mul"):
            for mode in MODES:
                out += tiles(dtype, act, True, mode)
                swap = cfgmod.GemmConfig(16, 128, stages=cfgmod._max_stages(16, 128, 12, swap_ab=True), swap_ab=True,
                                         dtype=dtype, activation=act, gather=True, gather_mode=mode)
                out.append(swap)
    return out


def small_t_configs() -> list[tuple[str, int, cfgmod.GemmConfig]]:
    out = []
    for model in TIMED_MODELS:
        h, i, e, k = moe.MODEL_SHAPES[model]
        for t in SMALL_TS:
            cfg = moe.choose_config(t * k, e, 2 * i, h, "bf16", "silu_and_mul", True)
            for mode in MODES:
                out.append((model, t, cfg.with_gather_mode(mode)))
    return out


def timed_configs() -> list[cfgmod.GemmConfig]:
    out = []
    for mode in MODES:
        out += tiles("bf16", "silu_and_mul", True, mode)
    out += tiles("bf16", "silu_and_mul", False)
    return out


def precompile() -> dict[str, str]:
    cfgs = list(dict.fromkeys(check_configs() + timed_configs() + [c for _, _, c in small_t_configs()]))
    report = compile_configs(cfgs)
    for c in timed_configs():
        log(f"  {c.kernel_name:<52} {report[c.kernel_name]}")
    return report


def ids_with_counts(counts: list[int], seed: int):  # type: ignore[no-untyped-def]
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    return ids[torch.randperm(len(ids), generator=g)].to(torch.int32).reshape(-1, 1).cuda()


def rel_err(got, ref) -> float:  # type: ignore[no-untyped-def]
    import torch

    got, ref = got.double(), ref.double()
    if not torch.isfinite(got).all():
        return float("inf")
    return float((got - ref).norm() / max(float(ref.norm()), 1e-30))


def correctness(results: dict) -> int:
    import torch

    failures = 0
    ids = ids_with_counts(EDGE, seed=1)
    plan = moe.route_plan(ids, len(EDGE))
    t = ids.shape[0]
    for k in (200, 2880):
        for cfg in check_configs():
            dt = torch.bfloat16 if cfg.dtype == "bf16" else torch.float16
            silu = cfg.activation == "silu_and_mul"
            try:
                # K = 200: a padded row stride (lda = 208), so the row TMA map's stride is not K.
                store = torch.randn(t, k + (8 if k == 200 else 0), device="cuda").to(dt)
                a = store[:, :k]
                w = (torch.randn(len(EDGE), N_CHECK, k, device="cuda") / math.sqrt(k)).to(dt)
                wt = moe.pack_gate_up(w) if silu else w
                out = torch.full((plan.num_rows, N_CHECK // 2 if silu else N_CHECK), float("nan"), device="cuda",
                                 dtype=dt)
                moe.grouped_gemm(a, wt, plan, activation=cfg.activation, out=out, config=cfg)
                ref = moe.grouped_gemm_reference(a, wt, plan, activation=cfg.activation)
                err = rel_err(out, ref)
            except Exception as exc:  # noqa: BLE001 - report and go on (a sticky error ends the run below)
                err = float("inf")
                log(f"  {cfg.kernel_name} K={k}: {type(exc).__name__}: {exc}")
                traceback.print_exc()
            ok = err <= TOL
            failures += not ok
            results["correctness"].append({"kernel": cfg.kernel_name, "k": k, "rel_err": err, "ok": ok})
            if not ok:
                log(f"  FAIL {cfg.kernel_name} K={k}: rel err {err:.3g}")
        torch.cuda.synchronize()
    n = len(results["correctness"])
    log(f"correctness: {n - failures}/{n} cases within {TOL} (edge counts {EDGE}, K 200 and 2880)")
    return failures


def timing(results: dict, cublas_tflops: float) -> None:
    import torch

    log(f"\n{'model':<15}{'T':>6}  {'kernel':<50}{'ms':>8}{'TFLOP/s':>9}{'/811':>6}{'/cuBLAS':>8}")
    plan_cases = [(m, t, None) for m in TIMED_MODELS for t in LARGE_TS]
    plan_cases += small_t_configs()
    current = None
    for model, t, small_cfg in plan_cases:
        if time.time() - T0 > BUDGET_S:
            log(f"time budget of {BUDGET_S}s spent: stopping here")
            break
        if QUICK and t == 16384:
            continue
        h, i, e, k = moe.MODEL_SHAPES[model]
        if current is None or current[0] != model:
            current = None
            torch.cuda.empty_cache()
            w1 = torch.randn(e, 2 * i, h, device="cuda", dtype=torch.bfloat16).mul_(h**-0.5)  # 15 GB for DeepSeek-V3
            current = (model, moe.pack_gate_up(w1))
            del w1
        w1p = current[1]
        g = torch.Generator(device="cuda").manual_seed(t)
        ids = torch.rand(t, e, device="cuda", generator=g).topk(k, dim=1).indices.to(torch.int32)
        plan = moe.route_plan(ids, e)
        x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        xg = x[plan.gather_idx.long()].contiguous()  # pre-gathered rows for the no-gather ceiling
        out = torch.empty(t * k, i, device="cuda", dtype=torch.bfloat16)
        flops = 2 * t * k * h * 2 * i
        cfgs = [small_cfg] if small_cfg is not None else timed_configs()
        for cfg in cfgs:
            src = x if cfg.gather else xg
            try:
                def run(cfg=cfg, src=src, out=out) -> None:
                    moe.grouped_gemm(src, w1p, plan, gather=cfg.gather, activation="silu_and_mul", out=out,
                                     config=cfg)

                r = time_cuda(run, reps=10, warmup=3, flush_l2=True)
            except Exception as exc:  # noqa: BLE001
                log(f"  {cfg.kernel_name}: {type(exc).__name__}: {exc}")
                results["errors"].append(f"{model} T={t} {cfg.kernel_name}: {exc}")
                if "CUDA" in str(exc) or "illegal" in str(exc):
                    raise
                continue
            ms = r["median_ms"]
            tf = flops / (ms * 1e-3) / 1e12
            mode = cfg.gather_mode if cfg.gather else "none"
            results["timing"].append({"model": model, "t": t, "kernel": cfg.kernel_name, "gather": mode, **r,
                                      "tflops": tf, "frac_811": tf / CEILING_TFLOPS, "frac_cublas": tf / cublas_tflops})
            log(f"{model:<15}{t:>6}  {cfg.kernel_name:<50}{ms:>8.3f}{tf:>9.1f}{tf / CEILING_TFLOPS:>6.2f}"
                f"{tf / cublas_tflops:>8.2f}")


def measure_cublas() -> float:
    """TFLOP/s of cuBLAS bf16 8192^3 now (the clock-drift-aware ceiling)."""
    import torch

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    ms = time_cuda(lambda: torch.mm(a, b), reps=10, graph=False)["median_ms"]
    return 2 * 8192**3 / (ms * 1e-3) / 1e12


def main() -> int:
    results: dict = {"correctness": [], "timing": [], "errors": []}
    results["ptxas"] = precompile()  # before CUDA starts: workers are spawned
    import torch

    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        log("dev_gather_check needs a Hopper GPU (sm_90a); none is available here.")
        return 0
    cublas = measure_cublas()
    log(f"cuBLAS bf16 8192^3 now: {cublas:.0f} TFLOP/s")
    results["cublas_tflops"] = cublas
    failures = 0
    try:
        failures = correctness(results)
        timing(results, cublas)
    except Exception as exc:  # noqa: BLE001 - keep what was gathered
        results["errors"].append(f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
    results["wall_s"] = time.time() - T0
    path = save("dev_gather_check", results.pop("timing"), results)
    log(f"\nwrote {path}; {time.time() - T0:.0f}s")
    return 1 if failures or results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
