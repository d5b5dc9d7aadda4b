"""Development check of the MoE grouped GEMM's tall tiles (block_m = 256, 64-row slices skipped at run time).

Needs an sm_90 GPU; run from the repository root::

    PYTHONPATH=$PWD python3 benchmarks/dev_tall_check.py [--quick]

1. Compiles every configuration it uses, in parallel, before CUDA starts, and prints the ptxas
   register and spill figures of the tall-tile kernels.
2. Correctness through ``staticbatch_moe.grouped_gemm(..., config=GemmConfig(...))`` against
   ``grouped_gemm_reference`` (relative norm error <= 1e-2, output poisoned with NaN, fresh
   random inputs): top-1 routing with per-expert row counts 1, 63, 64, 65, 127, 128, 129, 191,
   192, 193, 255, 256, 257, 300, 513 and an empty expert (every slice-skip pattern), K = 200
   (padded row stride) and 2880, N = 320, 256 x 128 tiles in bf16 (silu_and_mul on and off;
   cp.async gather, TMA gather, no gather) and fp16 (two of them), plus a bitwise repeat.
3. Times gate/up (gather + silu_and_mul, weight from ``pack_gate_up``) and down (no gather) at
   T = 1024, 4096, 16384 for the five models of ``MODEL_SHAPES`` (uniform random top-k through
   ``route_plan``) with 128 x 256, 64 x 256 ping-pong, 256 x 128 and ``choose_config``'s pick
   (marked ``*``; timed once when it is one of the three).
   CUDA-graph replay, L2 flushed between replays, median of 10. Prints ms, TFLOP/s and the
   roofline efficiency max(flops / 811e12, bytes / 4.5e12) / time, bytes = weights of the
   active experts + inputs + outputs.

Writes ``$OUT/dev_tall_check.json`` when OUT is set (and benchmarks/results/). A wall-clock
guard stops starting new timings after ~135 s.
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
BUDGET_S = 135.0
QUICK = "--quick" in sys.argv
PEAK_FLOPS = 811e12
PEAK_BYTES = 4.5e12
TOL = 1e-2
COUNTS = [1, 63, 64, 65, 127, 128, 129, 191, 192, 193, 255, 256, 257, 300, 513, 0]
N_CHECK = 320
MODELS = ("Qwen3-30B-A3B", "DeepSeek-V3", "Qwen3-235B-A22B", "GPT-OSS-120B", "Mixtral-8x7B")
TS = (1024, 4096, 16384)


def log(*args: object) -> None:
    print(*args, flush=True)


def tall(dtype: str = "bf16", act: str | None = None, gather: bool = False, mode: str = "cp_async"):  # type: ignore[no-untyped-def]
    return cfgmod.GemmConfig(256, 128, stages=cfgmod._max_stages(256, 128, 6), dtype=dtype, activation=act,
                             gather=gather, gather_mode=mode if gather else "cp_async")


def fixed_tiles(act: str | None, gather: bool) -> list[tuple[str, cfgmod.GemmConfig]]:
    kw = dict(activation=act, gather=gather)
    return [
        ("128x256", cfgmod.GemmConfig(128, 256, stages=cfgmod._max_stages(128, 256, 6), **kw)),
        ("64x256pp", cfgmod.GemmConfig(64, 256, stages=cfgmod._max_stages(64, 256, 6, pingpong=True), pingpong=True,
                                       **kw)),
        ("256x128", tall(act=act, gather=gather)),
    ]


def check_configs() -> list[cfgmod.GemmConfig]:
    out = []
    for act in (None, "silu_and_mul"):
        out += [tall("bf16", act, True, "cp_async"), tall("bf16", act, True, "tma"), tall("bf16", act, False)]
    out += [tall("fp16", "silu_and_mul", True), tall("fp16", None, False)]
    return out


def gemms(model: str, t: int) -> list[tuple[str, int, int, str | None, bool]]:
    """(name, n, k, activation, gather) of the layer's two GEMMs."""
    h, i, _, _ = moe.MODEL_SHAPES[model]
    return [("gate_up", 2 * i, h, "silu_and_mul", True), ("down", h, i, None, False)]


def timed_configs(model: str, t: int) -> list[tuple[str, str, cfgmod.GemmConfig]]:
    h, i, e, k = moe.MODEL_SHAPES[model]
    out = []
    for name, n, kk, act, gather in gemms(model, t):
        cands = fixed_tiles(act, gather)
        chosen = moe.choose_config(t * k, e, n, kk, "bf16", act, gather)
        cands = [(label + "*" if c == chosen else label, c) for label, c in cands]  # *: choose_config's pick
        if chosen not in [c for _, c in cands]:
            cands.append(("chosen*", chosen))
        out += [(name, label, c) for label, c in cands]
    return out


def precompile() -> dict[str, str]:
    cfgs = check_configs()
    for model in MODELS:
        for t in TS:
            cfgs += [c for _, _, c in timed_configs(model, t)]
    cfgs = list(dict.fromkeys(cfgs))
    report = compile_configs(cfgs)
    for c in cfgs:
        if c.block_m == 256:
            log(f"  {c.kernel_name:<50} {report[c.kernel_name]}")
    return report


def rel_err(got, ref) -> float:  # type: ignore[no-untyped-def]
    import torch

    got, ref = got.double(), ref.double()
    if not torch.isfinite(got).all():
        return float("inf")
    return float((got - ref).norm() / max(float(ref.norm()), 1e-30))


def correctness(results: dict) -> int:
    import torch

    g = torch.Generator().manual_seed(1)
    ids = torch.repeat_interleave(torch.arange(len(COUNTS)), torch.tensor(COUNTS))
    ids = ids[torch.randperm(len(ids), generator=g)].to(torch.int32).reshape(-1, 1).cuda()
    plan = moe.route_plan(ids, len(COUNTS))
    t = ids.shape[0]
    failures = 0
    for k in (200, 2880):
        for cfg in check_configs():
            dt = torch.bfloat16 if cfg.dtype == "bf16" else torch.float16
            silu = cfg.activation == "silu_and_mul"
            rows = t if cfg.gather else plan.num_rows
            try:
                store = torch.randn(rows, k + (8 if k == 200 else 0), device="cuda").to(dt)
                a = store[:, :k]  # K = 200: padded row stride (lda = 208)
                w = (torch.randn(len(COUNTS), N_CHECK, k, device="cuda") / math.sqrt(k)).to(dt)
                wt = moe.pack_gate_up(w) if silu else w
                outs = []
                for _ in range(2):
                    out = torch.full((plan.num_rows, N_CHECK // 2 if silu else N_CHECK), float("nan"), device="cuda",
                                     dtype=dt)
                    moe.grouped_gemm(a, wt, plan, gather=cfg.gather, activation=cfg.activation, out=out, config=cfg)
                    outs.append(out)
                ref = moe.grouped_gemm_reference(a, wt, plan, gather=cfg.gather, activation=cfg.activation)
                err = rel_err(outs[0], ref)
                same = bool(torch.equal(outs[0], outs[1]))
            except Exception as exc:  # noqa: BLE001 - report and go on (a sticky error ends the run below)
                err, same = float("inf"), False
                log(f"  {cfg.kernel_name} K={k}: {type(exc).__name__}: {exc}")
                traceback.print_exc()
            ok = err <= TOL and same
            failures += not ok
            results["correctness"].append({"kernel": cfg.kernel_name, "k": k, "rel_err": err, "bitwise_repeat": same,
                                           "ok": ok})
            if not ok:
                log(f"  FAIL {cfg.kernel_name} K={k}: rel err {err:.3g}, bitwise repeat {same}")
        torch.cuda.synchronize()
    n = len(results["correctness"])
    log(f"correctness: {n - failures}/{n} cases within {TOL} and bitwise repeatable (counts {COUNTS}, K 200 and 2880)")
    return failures


def timing(results: dict) -> None:
    import torch

    log(f"\n{'model':<16}{'T':>6} {'gemm':<8}{'tiles':<18}{'kernel':<48}{'ms':>8}{'TFLOP/s':>9}{'eff':>6}")
    for model in MODELS:
        h, i, e, k = moe.MODEL_SHAPES[model]
        if time.time() - T0 > BUDGET_S:
            log(f"time budget of {BUDGET_S}s spent: stopping before {model}")
            break
        torch.cuda.empty_cache()
        w1 = moe.pack_gate_up(torch.randn(e, 2 * i, h, device="cuda", dtype=torch.bfloat16).mul_(h**-0.5))
        w2 = torch.randn(e, h, i, device="cuda", dtype=torch.bfloat16).mul_(i**-0.5)
        for t in TS:
            if QUICK and t == 16384:
                continue
            if time.time() - T0 > BUDGET_S:
                log(f"time budget of {BUDGET_S}s spent: stopping at {model} T={t}")
                break
            gen = torch.Generator(device="cuda").manual_seed(t)
            ids = torch.rand(t, e, device="cuda", generator=gen).topk(k, dim=1).indices.to(torch.int32)
            plan = moe.route_plan(ids, e)
            active = int((plan.expert_counts > 0).sum())
            x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
            xd = torch.randn(t * k, i, device="cuda", dtype=torch.bfloat16)
            y_up = torch.empty(t * k, i, device="cuda", dtype=torch.bfloat16)
            y_down = torch.empty(t * k, h, device="cuda", dtype=torch.bfloat16)
            for name, label, cfg in timed_configs(model, t):
                if name == "gate_up":
                    src, w, out, n, kk = x, w1, y_up, 2 * i, h
                    nbytes = active * n * kk * 2 + t * h * 2 + t * k * i * 2
                else:
                    src, w, out, n, kk = xd, w2, y_down, h, i
                    nbytes = active * n * kk * 2 + t * k * i * 2 + t * k * h * 2
                flops = 2 * t * k * n * kk
                try:
                    def run(cfg=cfg, src=src, w=w, out=out) -> None:
                        moe.grouped_gemm(src, w, plan, gather=cfg.gather, activation=cfg.activation, out=out,
                                         config=cfg)

                    r = time_cuda(run, reps=10, warmup=3, flush_l2=True)
                except Exception as exc:  # noqa: BLE001
                    log(f"  {cfg.kernel_name}: {type(exc).__name__}: {exc}")
                    results["errors"].append(f"{model} T={t} {name} {cfg.kernel_name}: {exc}")
                    if "CUDA" in str(exc) or "illegal" in str(exc):
                        raise
                    continue
                ms = r["median_ms"]
                tf = flops / (ms * 1e-3) / 1e12
                eff = max(flops / PEAK_FLOPS, nbytes / PEAK_BYTES) / (ms * 1e-3)
                results["timing"].append({"model": model, "t": t, "gemm": name, "tiles": label,
                                          "kernel": cfg.kernel_name, **r, "tflops": tf, "efficiency": eff,
                                          "flops": flops, "bytes": nbytes, "active_experts": active})
                log(f"{model:<16}{t:>6} {name:<8}{label:<18}{cfg.kernel_name:<48}{ms:>8.3f}{tf:>9.1f}{eff:>6.2f}")
        del w1, w2


def main() -> int:
    results: dict = {"correctness": [], "timing": [], "errors": []}
    results["ptxas"] = precompile()  # before CUDA starts: workers are spawned
    import torch

    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        log("dev_tall_check needs a Hopper GPU (sm_90a); none is available here.")
        return 0
    failures = 0
    try:
        failures = correctness(results)
        timing(results)
    except Exception as exc:  # noqa: BLE001 - keep what was gathered
        results["errors"].append(f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
    results["wall_s"] = time.time() - T0
    path = save("dev_tall_check", results.pop("timing"), results)
    log(f"\nwrote {path}; {time.time() - T0:.0f}s")
    return 1 if failures or results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
