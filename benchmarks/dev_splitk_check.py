"""Device check of split-K in the MoE grouped GEMM (swap mode, decode): correctness, then timing.

Runs through the public path, ``staticbatch_moe.grouped_gemm(..., config=GemmConfig(...))``.

1. Correctness of forced split-K configurations against ``grouped_gemm_reference`` (relative
   norm error <= 1e-2, output poisoned with NaN first, fresh random data): T = 1, 2, 5, 16
   (16 experts, top-4), K = 2880 / 2048 / 200 (not all multiples of 64), N = 320 / 1536 / 256,
   bf16 and fp16, silu_and_mul on and off, gather on and off; edge row counts (empty experts,
   several token blocks per expert); bitwise determinism over three runs; a CUDA graph of both
   GEMMs replayed with new routing and inputs (twice each); the counters left at zero.
2. Timing (CUDA-graph replay, L2 flushed between replays, median) of each GEMM of the 5 models
   of shared/GPU.md at T = 1 and 16 (then 128 while time is left), uniform routing: the
   heuristic with split-K, the heuristic without it (``USE_SPLIT_K = False``: the previous
   choice) and split factors 2..8 of both widths; then the layer (both GEMMs) for the two
   heuristics. Each timed split configuration is checked once against the reference first.
   Printed: ms, GB/s, roofline efficiency (floor = bytes / 4.5 TB/s; FLOPs are negligible
   here). Written to $OUT/splitk_check.json when OUT is set.

Run (about 2 minutes on the H200)::

    cd repo && PYTHONPATH=$PWD python3 benchmarks/dev_splitk_check.py [--quick]
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback

import torch
from common import MEMORY_CEILING_TBPS, environment, time_cuda

import staticbatch as sb
import staticbatch_moe as moe
from staticbatch_moe import _gemm_config as cfgmod
from staticbatch_moe import gemm as gemm_mod

T0 = time.time()
BUDGET_S = 140.0  # stop starting new timing points after this
QUICK = "--quick" in sys.argv
TOL = 1e-2
RESULTS: dict = {"correctness": [], "timing": [], "layer": [], "errors": []}
MODELS = moe.MODEL_SHAPES
CHECK_E, CHECK_TOPK = 16, 4
CHECK_SHAPES = ((320, 2880), (1536, 2048), (256, 200))  # (N, K)
CHECK_SPLITS = ((8, 128, 4), (8, 64, 3), (16, 128, 2), (16, 64, 4), (48, 128, 3))  # (block_m, block_n, split_k)
TIME_TS = (1,) if QUICK else (1, 16)
TIME_SPLITS = ((2, 3, 4, 6, 8), (2, 4))  # for the heuristic's width, and for the other width


def log(*args) -> None:
    print(*args, flush=True)


def elapsed() -> float:
    return time.time() - T0


def write_json() -> None:
    out = os.environ.get("OUT")
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "splitk_check.json"), "w") as f:
            json.dump(RESULTS, f, indent=1, default=str)


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    got, ref = got.double(), ref.double()
    if not torch.isfinite(got).all():
        return float("inf")
    return (got - ref).norm().item() / max(ref.norm().item(), 1e-30)


def split_cfg(bm: int, bn: int, sk: int, dtype: str = "bf16", act=None, gather: bool = True) -> moe.GemmConfig:
    """A swap-mode configuration with the heuristic's ring depth for its tile."""
    return cfgmod._swap_config(bm, bn, act, dtype, gather, split_k=sk)


def heuristic(m: int, e: int, n: int, k: int, act, gather: bool, split: bool) -> moe.GemmConfig:
    old = cfgmod.USE_SPLIT_K
    cfgmod.USE_SPLIT_K = split
    try:
        return cfgmod.choose_config(m, e, n, k, "bf16", act, gather)
    finally:
        cfgmod.USE_SPLIT_K = old


def timing_configs(m: int, e: int, n: int, k: int, act, gather: bool) -> list[moe.GemmConfig]:
    """The heuristic without and with split-K, then splits of both widths at its token block."""
    old, new = heuristic(m, e, n, k, act, gather, False), heuristic(m, e, n, k, act, gather, True)
    out = [old, new]
    if old.swap_ab:
        k_steps = -(-k // 64)
        for bn, splits in zip((old.block_n, 64 if old.block_n == 128 else 128), TIME_SPLITS):
            for sk in splits:
                if 2 * sk <= k_steps:
                    out.append(split_cfg(old.block_m, bn, sk, old.dtype, act, gather))
    return list(dict.fromkeys(out))


def all_configs() -> list[moe.GemmConfig]:
    found = []
    for (bm, bn, sk) in CHECK_SPLITS:
        for dtype in check_dtypes(bm, bn, sk):
            for act in (None, "silu_and_mul"):
                for gather in (True, False):
                    found.append(split_cfg(bm, bn, sk, dtype, act, gather))
    for h, i, e, k in MODELS.values():
        for t in TIME_TS:
            found += timing_configs(t * k, e, 2 * i, h, "silu_and_mul", True)
            found += timing_configs(t * k, e, h, i, None, False)
    return list(dict.fromkeys(found))


def check_dtypes(bm: int, bn: int, sk: int) -> tuple[str, ...]:
    """bf16 everywhere; fp16 for the first checked split only (fewer kernels to compile)."""
    return ("bf16", "fp16") if (bm, bn, sk) == CHECK_SPLITS[0] else ("bf16",)


def uniform_ids(t: int, e: int, k: int, seed: int) -> torch.Tensor:
    g = torch.Generator(device="cuda").manual_seed(seed)
    return torch.rand(t, e, device="cuda", generator=g).topk(k, dim=1).indices.to(torch.int32)


def ids_with_counts(counts: list[int], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ids = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    return ids[torch.randperm(len(ids), generator=g)].to(torch.int32).reshape(-1, 1).cuda()


def check_once(ids: torch.Tensor, e: int, n: int, k: int, cfg: moe.GemmConfig, seed: int) -> float:
    """One forced configuration against the reference on fresh data, output poisoned."""
    dt = torch.bfloat16 if cfg.dtype == "bf16" else torch.float16
    silu = cfg.activation == "silu_and_mul"
    g = torch.Generator(device="cuda").manual_seed(seed)
    p = moe.route_plan(ids, e)
    a = torch.randn(ids.shape[0] if cfg.gather else p.num_rows, k, device="cuda", generator=g).to(dt)
    w = (torch.randn(e, n, k, device="cuda", generator=g) / k**0.5).to(dt)
    wt = moe.pack_gate_up(w) if silu else w
    out = torch.full((p.num_rows, n // 2 if silu else n), float("nan"), dtype=dt, device="cuda")
    moe.grouped_gemm(a, wt, p, gather=cfg.gather, activation=cfg.activation, out=out, config=cfg)
    ref = moe.grouped_gemm_reference(a, wt, p, gather=cfg.gather, activation=cfg.activation)
    m = int(p.expert_starts[-1])
    return rel_err(out[:m], ref[:m]) if m else 0.0


def record(name: str, ok: bool, **info) -> bool:
    RESULTS["correctness"].append({"case": name, "ok": ok, **info})
    log(f"[{'PASS' if ok else 'FAIL'}] {name} " + " ".join(f"{k}={v}" for k, v in info.items()))
    return ok


def correctness() -> None:
    seed = 0
    for t in (1, 2, 5, 16):
        ids = uniform_ids(t, CHECK_E, CHECK_TOPK, seed=t)
        for (bm, bn, sk), (n, k) in zip(CHECK_SPLITS, CHECK_SHAPES * 2):
            if sk > -(-k // 64):
                continue
            for dtype in check_dtypes(bm, bn, sk):
                for act in (None, "silu_and_mul"):
                    for gather in (True, False):
                        cfg = split_cfg(bm, bn, sk, dtype, act, gather)
                        seed += 1
                        err = check_once(ids, CHECK_E, n, k, cfg, seed)
                        record(f"T={t} n={n} k={k} {cfg.kernel_name}", err < TOL, err=f"{err:.2e}")
    edge = [1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 0, 255, 256, 257, 8, 9, 47, 48, 49, 95, 96, 97]
    ids = ids_with_counts(edge)
    for bm, bn, sk in CHECK_SPLITS:
        for act in (None, "silu_and_mul"):
            for gather in (True, False):
                cfg = split_cfg(bm, bn, sk, "bf16", act, gather)
                seed += 1
                err = check_once(ids, len(edge), 320, 200, cfg, seed)
                record(f"edge counts n=320 k=200 {cfg.kernel_name}", err < TOL, err=f"{err:.2e}")
    # Bitwise determinism over three runs (Qwen3-30B-A3B gate/up at T = 1 and 16).
    h, i, e, topk = MODELS["Qwen3-30B-A3B"]
    w = moe.pack_gate_up((torch.randn(e, 2 * i, h, device="cuda") / h**0.5).to(torch.bfloat16))
    for t in (1, 16):
        p = moe.route_plan(uniform_ids(t, e, topk, seed=100 + t), e)
        a = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        cfg = split_cfg(8, 128, 4, "bf16", "silu_and_mul", True)
        outs = [moe.grouped_gemm(a, w, p, activation="silu_and_mul", config=cfg) for _ in range(3)]
        same = all(torch.equal(outs[0], o) for o in outs[1:])
        err = rel_err(outs[0], moe.grouped_gemm_reference(a, w, p, activation="silu_and_mul"))
        record(f"determinism Qwen3-30B gate_up T={t} {cfg.kernel_name}", same and err < TOL, bitwise=same,
               err=f"{err:.2e}")
    del w
    # A CUDA graph of both GEMMs, replayed with new routing and inputs; fresh and cached counters.
    for warm in (False, True):
        e, t, topk, h, i = 16, 3, 4, 2880, 384
        ids = uniform_ids(t, e, topk, seed=7)
        a = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        w1 = moe.pack_gate_up((torch.randn(e, 2 * i, h, device="cuda") / h**0.5).to(torch.bfloat16))
        w2 = (torch.randn(e, h, i, device="cuda") / i**0.5).to(torch.bfloat16)
        c1, c2 = split_cfg(8, 128, 4, "bf16", "silu_and_mul", True), split_cfg(8, 64, 3, "bf16", None, False)

        def layer() -> torch.Tensor:
            p = moe.route_plan(ids, e)
            x = moe.grouped_gemm(a, w1, p, activation="silu_and_mul", config=c1)
            return moe.grouped_gemm(x, w2, p, gather=False, config=c2)

        layer()
        stream = torch.cuda.Stream()
        if warm:
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                layer()
            torch.cuda.current_stream().wait_stream(stream)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            y = layer()
        for rep in range(2):
            ids.copy_(uniform_ids(t, e, topk, seed=200 + rep))
            a.normal_()
            y.fill_(float("nan"))
            graph.replay()
            torch.cuda.synchronize()
            first = y.clone()
            graph.replay()
            torch.cuda.synchronize()
            fresh = moe.route_plan(ids, e)
            ref = moe.grouped_gemm_reference(moe.grouped_gemm_reference(a, w1, fresh, activation="silu_and_mul"),
                                             w2, fresh, gather=False)
            err = rel_err(y, ref)
            record(f"cuda graph replay {rep} ({'cached' if warm else 'fresh'} counters)",
                   err < TOL and torch.equal(first, y), err=f"{err:.2e}", bitwise=torch.equal(first, y))
    torch.cuda.synchronize()
    bufs = [b for (use, _, _), b in gemm_mod._stream_counters.items() if use == "splitk"]
    zero = all(int(b.abs().sum()) == 0 for b in bufs)
    record("counters left at zero", zero, buffers=len(bufs))


def time_points() -> None:
    hdr = f"{'model':<16}{'T':>5} {'gemm':<8}{'config':<52}{'ms':>8}{'GB/s':>7}{'eff':>6}{'vs old':>8}"
    log(hdr)
    for model, (h, i, e, topk) in MODELS.items():
        for t in TIME_TS:
            if elapsed() > BUDGET_S:
                log(f"time budget of {BUDGET_S}s spent: stopping at {model} T={t}")
                return
            try:
                time_model(model, h, i, e, topk, t)
            except Exception as exc:  # report and go on
                RESULTS["errors"].append({"where": f"{model} T={t}", "error": repr(exc),
                                          "trace": traceback.format_exc()[-2000:]})
                log(f"ERROR {model} T={t}: {exc!r}")
                if "illegal" in repr(exc).lower() or "launch failed" in repr(exc).lower():
                    raise
            write_json()
            torch.cuda.empty_cache()


_WEIGHTS: dict = {}


def weights(model: str, h: int, i: int, e: int):  # type: ignore[no-untyped-def]
    if model not in _WEIGHTS:
        _WEIGHTS.clear()
        torch.cuda.empty_cache()
        w1 = (torch.randn(e, 2 * i, h, device="cuda", dtype=torch.bfloat16) / h**0.5)
        w1p = moe.pack_gate_up(w1)
        del w1
        w2 = torch.randn(e, h, i, device="cuda", dtype=torch.bfloat16) / i**0.5
        _WEIGHTS[model] = (w1p, w2)
    return _WEIGHTS[model]


def time_model(model: str, h: int, i: int, e: int, topk: int, t: int) -> None:
    w1p, w2 = weights(model, h, i, e)
    plan = moe.route_plan(uniform_ids(t, e, topk, seed=t), e)
    active = int((plan.expert_counts > 0).sum())
    m = t * topk
    x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
    mid = torch.randn(m, i, device="cuda", dtype=torch.bfloat16)
    y = torch.empty(m, h, device="cuda", dtype=torch.bfloat16)
    gemms = {
        "gate_up": dict(a=x, w=w1p, gather=True, act="silu_and_mul", out=torch.empty(m, i, device="cuda",
                        dtype=torch.bfloat16), n=2 * i, k=h, bytes=active * 2 * i * h * 2 + (t * h + m * i) * 2),
        "down": dict(a=mid, w=w2, gather=False, act=None, out=y, n=h, k=i, bytes=active * h * i * 2 + (m * i + m * h) * 2),
    }
    best: dict = {}
    for name, g in gemms.items():
        cfgs = timing_configs(m, e, g["n"], g["k"], g["act"], g["gather"])
        old = heuristic(m, e, g["n"], g["k"], g["act"], g["gather"], False)
        new = heuristic(m, e, g["n"], g["k"], g["act"], g["gather"], True)
        old_ms = None
        ref = None
        for cfg in cfgs:
            def fn(cfg=cfg, g=g) -> None:
                moe.grouped_gemm(g["a"], g["w"], plan, gather=g["gather"], activation=g["act"], out=g["out"], config=cfg)

            err = None
            if cfg.split_k > 1:  # check before timing
                if ref is None:
                    ref = moe.grouped_gemm_reference(g["a"], g["w"], plan, gather=g["gather"], activation=g["act"])
                g["out"].fill_(float("nan"))
                fn()
                mm = int(plan.expert_starts[-1])
                err = rel_err(g["out"][:mm], ref[:mm])
                if not err < TOL:
                    RESULTS["errors"].append({"where": f"{model} T={t} {name} {cfg.kernel_name}", "error": f"err {err}"})
                    log(f"FAIL {model} T={t} {name} {cfg.kernel_name}: rel err {err:.2e}")
                    continue
            r = time_cuda(fn, reps=30, warmup=3, flush_l2=True)
            ms = r["median_ms"]
            if cfg == old:
                old_ms = ms  # timed first
            floor_ms = g["bytes"] / (MEMORY_CEILING_TBPS * 1e12) * 1e3
            tag = "+".join(x for x, c in (("old", old), ("new", new)) if c == cfg)
            row = {"model": model, "T": t, "gemm": name, "config": cfg.kernel_name, "split_k": cfg.split_k,
                   "role": tag, "ms": ms, "p20_ms": r["p20_ms"], "p80_ms": r["p80_ms"], "bytes": g["bytes"],
                   "gbps": g["bytes"] / ms / 1e6, "efficiency": floor_ms / ms, "rel_err": err, "active": active}
            RESULTS["timing"].append(row)
            rel = f"{(old_ms / ms):>8.2f}" if old_ms else f"{'-':>8}"
            log(f"{model:<16}{t:>5} {name:<8}{(cfg.kernel_name.replace('sb_grouped_gemm_', '') + (' *' + tag if tag else '')):<52}"
                f"{ms * 1e3:>7.1f}u{row['gbps']:>7.0f}{row['efficiency']:>6.2f}{rel}")
            if name not in best or ms < best[name][1]:
                best[name] = (cfg, ms)
    # The layer: both GEMMs in one graph, old and new heuristic, and the best of each GEMM.
    lay_bytes = gemms["gate_up"]["bytes"] + gemms["down"]["bytes"]  # mid written once and read once
    floor_ms = lay_bytes / (MEMORY_CEILING_TBPS * 1e12) * 1e3
    for label, split in (("old heuristic", False), ("new heuristic", True), ("best per gemm", None)):
        if split is None:
            c1, c2 = best["gate_up"][0], best["down"][0]
        else:
            c1 = heuristic(m, e, 2 * i, h, "silu_and_mul", True, split)
            c2 = heuristic(m, e, h, i, None, False, split)

        def layer(c1=c1, c2=c2) -> None:
            moe.grouped_gemm(x, w1p, plan, activation="silu_and_mul", out=gemms["gate_up"]["out"], config=c1)
            moe.grouped_gemm(gemms["gate_up"]["out"], w2, plan, gather=False, out=y, config=c2)

        r = time_cuda(layer, reps=30, warmup=3, flush_l2=True)
        row = {"model": model, "T": t, "which": label, "gate_up": c1.kernel_name, "down": c2.kernel_name,
               "ms": r["median_ms"], "floor_ms": floor_ms, "efficiency": floor_ms / r["median_ms"]}
        RESULTS["layer"].append(row)
        log(f"{model:<16}{t:>5} LAYER {label:<14} {r['median_ms'] * 1e3:>7.1f} us  eff {row['efficiency']:.2f}"
            f"  ({c1.kernel_name.replace('sb_grouped_gemm_', '')} + {c2.kernel_name.replace('sb_grouped_gemm_', '')})")


def main() -> int:
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("dev_splitk_check needs a Hopper GPU (sm_90a); none is available here.")
        return 0
    cfgs = all_configs()
    t = time.time()
    compiled = sb.compile_many([(cfgmod.kernel_source(c), c.kernel_name) for c in cfgs],
                               options=("--ptxas-options=-v",))
    log(f"[compile] {len(cfgs)} configurations in {time.time() - t:.1f}s")
    ptxas = {}
    for c, k in zip(cfgs, compiled):
        if c.split_k > 1 and k.log:
            line = " ".join(s.strip() for s in k.log.splitlines() if "registers" in s or "spill" in s)
            ptxas[c.kernel_name] = line
    RESULTS["ptxas"] = ptxas
    try:
        RESULTS["env"] = environment()
    except Exception as exc:  # noqa: BLE001
        RESULTS["env"] = repr(exc)
    torch.manual_seed(0)
    try:
        log("==== correctness ====")
        correctness()
        log(f"correctness done at {elapsed():.0f}s; failures: "
            f"{sum(1 for r in RESULTS['correctness'] if not r['ok'])} of {len(RESULTS['correctness'])}")
        write_json()
        log("==== timing (per GEMM; 'vs old' = old heuristic ms / this ms) ====")
        time_points()
    except Exception as exc:
        RESULTS["errors"].append({"where": "main", "error": repr(exc), "trace": traceback.format_exc()[-3000:]})
        log(f"FATAL: {exc!r}")
        traceback.print_exc()
    finally:
        write_json()
    lay = RESULTS["layer"]
    if lay:
        log("==== layer summary (efficiency) ====")
        for r in lay:
            log(f"  {r['model']:<16} T={r['T']:<4} {r['which']:<14} {r['ms'] * 1e3:7.1f} us  eff {r['efficiency']:.2f}")
        effs = [r["efficiency"] for r in lay if r["which"] == "new heuristic"]
        if effs:
            log(f"  new heuristic: min eff {min(effs):.2f}, geomean {math.exp(sum(map(math.log, effs)) / len(effs)):.2f}")
    bad = sum(1 for r in RESULTS["correctness"] if not r["ok"]) + len(RESULTS["errors"])
    log(f"done in {elapsed():.0f}s; {bad} failures/errors")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
