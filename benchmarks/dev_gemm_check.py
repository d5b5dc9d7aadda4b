"""Development check of the Hopper MoE grouped GEMM kernel (staticbatch::moe::grouped_gemm).

Standalone: needs torch (CUDA), cuda.bindings and cuda.pathfinder, an sm_90 GPU, and the repo
root as working directory (and on PYTHONPATH). It

1. compiles each configuration it tests with NVRTC (cuda.bindings.nvrtc) and prints the
   ptxas report (registers, spills);
2. loads the cubin with the driver API in torch's primary context and launches it with
   cuLaunchKernel on torch's current stream, packing the arguments itself;
3. checks correctness against a float32 torch reference (relative norm error < 1e-2,
   output poisoned with NaN before each run, fresh random inputs): normal and swap modes,
   gather on/off, silu_and_mul on/off, bf16 and fp16, edge row counts, K and N that are not
   multiples of the tile, a task order that is not the expert order, and a grid of one block
   (every tile of the plan through one block, so pipeline phases cross many tiles);
4. times real MoE shapes (Mixtral-8x7B and Qwen3-30B-A3B, T = 1 .. 4096, both GEMMs) with CUDA
   events (L2 flushed before each run, median of 20 after warm-up) next to
   torch._grouped_mm where available, and prints a table.

With ``--sweep`` it instead times, for the 5 models of GPU.md x T in (1, 16, 128, 1024, 4096,
16384) x (gate_up, down), every configuration ``candidate_configs`` proposes (each checked for
correctness once on that shape, then timed: median of 10, L2 flushed), and prints per shape
the winner next to ``choose_config``'s pick and torch._grouped_mm; written to
$OUT/gemm_sweep.json. A wall-clock guard stops it after ~225 s with what it has.

Everything is also written to $OUT/gemm_check.json when OUT is set. A failing configuration
is reported and skipped; a hung or crashed kernel (sticky CUDA error) ends the run early with
what was gathered so far.

Run::

    PYTHONPATH=. python benchmarks/dev_gemm_check.py [--quick]
    PYTHONPATH=. python benchmarks/dev_gemm_check.py --sweep
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import math
import os
import sys
import time
import traceback

import torch
from cuda.bindings import driver, nvrtc

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from staticbatch_moe._gemm_config import (
    GemmConfig,
    candidate_configs,
    choose_config,
    interleave_gate_up,
    kernel_source,
    shared_bytes,
    threads,
    token_tma_descriptor,
    weight_tma_descriptor,
)

# This script packs its own launches without the split-K workspace: it runs every
# configuration with split_k = 1 (benchmarks/dev_splitk_check.py covers split-K).
_choose_config, _candidate_configs = choose_config, candidate_configs


def choose_config(*args, **kwargs) -> GemmConfig:  # noqa: F811
    return dataclasses.replace(_choose_config(*args, **kwargs), split_k=1)


def candidate_configs(*args, **kwargs) -> list[GemmConfig]:  # noqa: F811
    return list(dict.fromkeys(dataclasses.replace(c, split_k=1) for c in _candidate_configs(*args, **kwargs)))


T_START = time.time()
TIME_BUDGET_S = 220.0  # stop starting new work after this (the whole run must stay < 4 min)
RESULTS: dict = {"compile": {}, "correctness": [], "benchmark": [], "errors": []}
QUICK = "--quick" in sys.argv
SWEEP = "--sweep" in sys.argv
SWEEP_BUDGET_S = 225.0  # sweep mode: stop starting new shapes after this


class Fatal(RuntimeError):
    """The CUDA context is unusable (hang or sticky error): stop the run."""


def log(*args) -> None:
    print(*args, flush=True)


def elapsed() -> float:
    return time.time() - T_START


def write_json() -> None:
    out = os.environ.get("OUT")
    if not out:
        return
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "gemm_check.json"), "w") as f:
        json.dump(RESULTS, f, indent=1, default=str)


def cu_check(res, what: str):
    """Check a cuda.bindings result (a CUresult or a tuple starting with one)."""
    err = res[0] if isinstance(res, tuple) else res
    if err != driver.CUresult.CUDA_SUCCESS:
        _, name = driver.cuGetErrorName(err)
        msg = f"{what} failed: {name.decode() if isinstance(name, bytes) else name}"
        if err in (
            driver.CUresult.CUDA_ERROR_ILLEGAL_ADDRESS,
            driver.CUresult.CUDA_ERROR_LAUNCH_FAILED,
            driver.CUresult.CUDA_ERROR_ILLEGAL_INSTRUCTION,
            driver.CUresult.CUDA_ERROR_MISALIGNED_ADDRESS,
            driver.CUresult.CUDA_ERROR_HARDWARE_STACK_ERROR,
        ):
            raise Fatal(msg)
        raise RuntimeError(msg)
    if isinstance(res, tuple):
        return res[1] if len(res) == 2 else res[1:]
    return None


# --------------------------------------------------------------------------------------------
# Compile and load
# --------------------------------------------------------------------------------------------

_INCLUDES: list[str] | None = None


def includes() -> list[str]:
    global _INCLUDES
    if _INCLUDES is None:
        import cuda.pathfinder as pf

        _INCLUDES = [os.path.join(REPO, "cuda_src"), pf.find_nvidia_header_directory("cudart"),
                     pf.find_nvidia_header_directory("cccl")]
    return _INCLUDES


def nvrtc_compile(src: str, name: str) -> tuple[bytes, str]:
    err, prog = nvrtc.nvrtcCreateProgram(src.encode(), f"{name}.cu".encode(), 0, [], [])
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise RuntimeError(f"nvrtcCreateProgram: {err}")
    opts = [b"-arch=sm_90a", b"-std=c++17", b"-default-device", b"--ptxas-options=-v"]
    opts += [b"-I" + p.encode() for p in includes()]
    res = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
    _, n = nvrtc.nvrtcGetProgramLogSize(prog)
    buf = b" " * n
    nvrtc.nvrtcGetProgramLog(prog, buf)
    text = buf.decode(errors="replace").rstrip("\x00")
    if res[0] != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise RuntimeError(f"NVRTC failed for {name}:\n{text[-4000:]}")
    _, n = nvrtc.nvrtcGetCUBINSize(prog)
    cubin = b" " * n
    nvrtc.nvrtcGetCUBIN(prog, cubin)
    nvrtc.nvrtcDestroyProgram(prog)
    return cubin, text


_PRECOMPILED: dict[str, tuple[bytes, str, float]] = {}


def _compile_one(cfg: GemmConfig) -> tuple[str, bytes, str, float]:
    t0 = time.time()
    cubin, text = nvrtc_compile(kernel_source(cfg), cfg.kernel_name)
    return cfg.kernel_name, cubin, text, time.time() - t0


def precompile(cfgs: list[GemmConfig]) -> None:
    """Compile configurations in parallel worker processes (NVRTC only; call before CUDA is used)."""
    import concurrent.futures as cf
    import multiprocessing as mp

    todo = [c for c in dict.fromkeys(cfgs) if c.kernel_name not in _PRECOMPILED]
    if not todo:
        return
    t0 = time.time()
    workers = max(1, min(len(todo), (os.cpu_count() or 2) - 1, 16))
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
        futs = [ex.submit(_compile_one, c) for c in todo]
        for f in futs:
            try:
                name, cubin, text, sec = f.result()
                _PRECOMPILED[name] = (cubin, text, sec)
            except Exception as e:  # noqa: BLE001  (compiled again, and reported, on first use)
                log(f"[compile] precompile failed: {type(e).__name__}: {str(e)[:300]}")
    log(f"[compile] {len(_PRECOMPILED)} configurations precompiled in {time.time() - t0:.1f}s with {workers} processes")


class Kernel:
    """One compiled and loaded configuration."""

    def __init__(self, cfg: GemmConfig):
        self.cfg = cfg
        t0 = time.time()
        if cfg.kernel_name in _PRECOMPILED:
            cubin, text, _ = _PRECOMPILED[cfg.kernel_name]
        else:
            cubin, text = nvrtc_compile(kernel_source(cfg), cfg.kernel_name)
        report = [ln.strip() for ln in text.splitlines()
                  if "registers" in ln or "spill" in ln or "warning" in ln.lower()]
        self.compile_s = time.time() - t0
        RESULTS["compile"][cfg.kernel_name] = {"seconds": round(self.compile_s, 2), "ptxas": report}
        log(f"[compile] {cfg.kernel_name} ({self.compile_s:.1f}s): " + " | ".join(report))
        self.module = cu_check(driver.cuModuleLoadData(cubin), "cuModuleLoadData")
        self.func = cu_check(driver.cuModuleGetFunction(self.module, cfg.kernel_name.encode()), "cuModuleGetFunction")
        self.smem = shared_bytes(cfg)
        self.threads = threads(cfg)
        cu_check(driver.cuFuncSetAttribute(
            self.func, driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, self.smem),
            "cuFuncSetAttribute(max dynamic smem)")

    def launch(self, w_map: bytes, a_map: bytes, a: torch.Tensor, lda: int, out: torch.Tensor, gather_idx,
               plan: dict, n: int, k: int, grid: int) -> None:
        # The two tensor maps: 128 bytes each in 64-byte aligned buffers.
        tma_buf = ctypes.create_string_buffer(256 + 64)
        tma_addr = ctypes.addressof(tma_buf)
        tma_addr += (-tma_addr) % 64
        ctypes.memmove(tma_addr, w_map, 128)
        ctypes.memmove(tma_addr + 128, a_map, 128)
        vals = [
            ctypes.c_void_p(a.data_ptr()),
            ctypes.c_int64(lda),
            ctypes.c_void_p(out.data_ptr()),
            ctypes.c_void_p(gather_idx.data_ptr() if gather_idx is not None else 0),
            ctypes.c_void_p(plan["tile_offsets"].data_ptr()),
            ctypes.c_void_p(plan["task_rows"].data_ptr()),
            ctypes.c_void_p(plan["task_starts"].data_ptr()),
            ctypes.c_void_p(plan["task_expert"].data_ptr()),
            ctypes.c_int32(plan["num_tasks"]),
            ctypes.c_int32(n),
            ctypes.c_int32(k),
            ctypes.c_void_p(0),  # split-K workspace and counters: this script runs split_k = 1 only
            ctypes.c_void_p(0),
            ctypes.c_void_p(0),  # slot_to_row, num_tokens, top_k: the staged copy by token (unused here)
            ctypes.c_int32(0),
            ctypes.c_int32(0),
        ]
        ptrs = (ctypes.c_void_p * (2 + len(vals)))(tma_addr, tma_addr + 128, *[ctypes.addressof(v) for v in vals])
        stream = driver.CUstream(torch.cuda.current_stream().cuda_stream)
        cu_check(driver.cuLaunchKernel(self.func, max(1, grid), 1, 1, self.threads, 1, 1, self.smem, stream,
                                       ctypes.addressof(ptrs), 0), "cuLaunchKernel")
        # Keep the buffers alive until the launch has been enqueued (cuLaunchKernel copies them).
        del tma_buf, vals, ptrs


_KERNELS: dict[GemmConfig, Kernel] = {}


def get_kernel(cfg: GemmConfig) -> Kernel:
    if cfg not in _KERNELS:
        _KERNELS[cfg] = Kernel(cfg)
    return _KERNELS[cfg]


def sync_or_die(what: str, timeout_s: float = 20.0) -> None:
    """Wait for the GPU; a hang or a sticky error ends the run."""
    ev = torch.cuda.Event()
    ev.record()
    t0 = time.time()
    while True:
        try:
            if ev.query():
                break
        except RuntimeError as e:  # sticky error surfaced by torch
            raise Fatal(f"{what}: {e}") from e
        if time.time() - t0 > timeout_s:
            raise Fatal(f"{what}: kernel did not finish in {timeout_s:.0f}s (hang?)")
        time.sleep(0.0005)
    try:
        torch.cuda.synchronize()
    except RuntimeError as e:
        raise Fatal(f"{what}: {e}") from e


# --------------------------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------------------------

def build_plan(counts: torch.Tensor, task_expert: torch.Tensor, n: int, cfg: GemmConfig) -> dict:
    """Per-task arrays on the GPU, as the framework would build them.

    counts: int64 [num_tasks] rows per task (task order), task_expert: int32 [num_tasks].
    """
    dev = counts.device
    m_tiles = (counts + cfg.block_m - 1) // cfg.block_m
    n_tiles = (n + cfg.block_n - 1) // cfg.block_n
    tiles = m_tiles * n_tiles
    tile_offsets = torch.zeros(len(counts) + 1, dtype=torch.int32, device=dev)
    tile_offsets[1:] = torch.cumsum(tiles, 0).to(torch.int32)
    task_starts = torch.zeros(len(counts) + 1, dtype=torch.int64, device=dev)
    task_starts[1:] = torch.cumsum(counts, 0)
    return {
        "tile_offsets": tile_offsets,
        "task_rows": counts.to(torch.int32).contiguous(),
        "task_starts": task_starts,
        "task_expert": task_expert.to(torch.int32).contiguous(),
        "num_tasks": len(counts),
        "total_tiles": int(tile_offsets[-1].item()),
    }


def random_routing(t: int, e: int, topk: int, dev) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform random top-k routing: (rows per expert int64 [E], gather_idx int32 [T*topk])."""
    ids = torch.rand(t, e, device=dev).topk(topk, dim=1).indices.reshape(-1)
    order = torch.argsort(ids, stable=True)
    counts = torch.bincount(ids, minlength=e)
    gather_idx = (order // topk).to(torch.int32)
    return counts, gather_idx


def torch_dtype(cfg: GemmConfig) -> torch.dtype:
    return torch.bfloat16 if cfg.dtype == "bf16" else torch.float16


def reference(a_rows: torch.Tensor, w: torch.Tensor, counts: list[int], task_expert: list[int],
              silu: bool) -> torch.Tensor:
    """float32 reference. a_rows [M_total, K] (already gathered), w [E, N, K] (interleaved if silu)."""
    outs = []
    start = 0
    for m, e in zip(counts, task_expert):
        x = a_rows[start:start + m].float()
        y = x @ w[e].float().t()
        if silu:
            v = y.view(m, w.shape[1] // 16, 2, 8)
            gate, up = v[:, :, 0].reshape(m, w.shape[1] // 2), v[:, :, 1].reshape(m, w.shape[1] // 2)
            y = torch.nn.functional.silu(gate) * up
        outs.append(y)
        start += m
    return torch.cat(outs, 0)


def run_case(cfg: GemmConfig, counts: list[int], n: int, k: int, task_perm: bool, grid: int | None,
             label: str, w_override: torch.Tensor | None = None, extra_rows: int = 0) -> dict:
    """One correctness case. counts: rows per task in task order."""
    dev = torch.device("cuda")
    dt = torch_dtype(cfg)
    silu = cfg.activation == "silu_and_mul"
    e = len(counts)
    task_expert = torch.randperm(e) if task_perm else torch.arange(e)
    counts_t = torch.tensor(counts, dtype=torch.int64)
    m_total = int(counts_t.sum())
    if w_override is not None:
        w = w_override
    else:
        w = (torch.randn(e, n, k, device=dev) / math.sqrt(k)).to(dt)
    lda = k + 8 * (1 if cfg.gather else 0)  # a padded row stride when gathering
    if cfg.gather:
        t_rows = max(1, m_total // 2 + 3 + extra_rows)
        a_store = torch.randn(t_rows, lda, device=dev).to(dt)
        a = a_store
        gather_idx = torch.randint(0, t_rows, (max(1, m_total),), device=dev, dtype=torch.int32)
        a_rows = a_store[:, :k][gather_idx[:m_total].long()]
    else:
        a = torch.randn(max(1, m_total), k, device=dev).to(dt)
        lda = k
        gather_idx = None
        a_rows = a[:m_total]
    n_out = n // 2 if silu else n
    out = torch.full((max(1, m_total), n_out), float("nan"), device=dev, dtype=dt)
    plan = build_plan(counts_t.to(dev), task_expert.to(dev), n, cfg)
    kern = get_kernel(cfg)
    w_map = weight_tma_descriptor(w, cfg)
    g = grid if grid is not None else min(plan["total_tiles"], torch.cuda.get_device_properties(0).multi_processor_count)
    # The token map spans K columns (a[:, :k]: the padded stride stays lda), as grouped_gemm builds it.
    kern.launch(w_map, token_tma_descriptor(a[:, :k], cfg), a, lda, out, gather_idx, plan, n, k, g)
    sync_or_die(f"{cfg.kernel_name} {label}")
    ref = reference(a_rows, w, counts, task_expert.tolist(), silu) if m_total else torch.zeros(0, n_out, device=dev)
    got = out[:m_total].float()
    nan_rows = int(torch.isnan(got).any(dim=1).sum()) if m_total else 0
    denom = ref.norm().item()
    err = (got - ref).norm().item() / max(denom, 1e-30) if m_total else 0.0
    ok = nan_rows == 0 and err < 1e-2
    rec = {"kernel": cfg.kernel_name, "case": label, "n": n, "k": k, "m_total": m_total, "grid": g,
           "rel_err": err, "nan_rows": nan_rows, "ok": ok}
    if not ok and m_total:
        # Where it goes wrong: first bad task.
        start = 0
        for ti, m in enumerate(counts):
            if m:
                d = (got[start:start + m] - ref[start:start + m]).norm().item() / max(ref[start:start + m].norm().item(), 1e-30)
                if not (d < 1e-2):
                    rec["first_bad_task"] = {"task": ti, "rows": m, "rel_err": d}
                    break
            start += m
    return rec


def correctness_configs() -> list[GemmConfig]:
    # (block_m, block_n, stages, pingpong)
    normal_shapes = [(128, 256, 4, False), (128, 128, 6, False), (64, 128, 6, False), (64, 256, 4, True),
                     (64, 128, 6, True)]
    swap_shapes = [(16, 128, 8, False), (64, 64, 8, False), (8, 64, 12, False), (48, 128, 8, False)]
    cfgs = []
    # Order: normal mode first, then swap, then silu; bf16 then fp16.
    for silu in (False, True):
        for swap, shapes in ((False, normal_shapes), (True, swap_shapes)):
            for bm, bn, st, pp in shapes:
                for gather in (False, True):
                    cfgs.append(GemmConfig(block_m=bm, block_n=bn, stages=st, swap_ab=swap, pingpong=pp,
                                           activation="silu_and_mul" if silu else None, dtype="bf16", gather=gather))
    for silu in (False, True):
        for gather in (False, True):
            cfgs.append(GemmConfig(block_m=128, block_n=256, stages=4, activation="silu_and_mul" if silu else None,
                                   dtype="fp16", gather=gather))
            cfgs.append(GemmConfig(block_m=16, block_n=128, stages=8, swap_ab=True,
                                   activation="silu_and_mul" if silu else None, dtype="fp16", gather=gather))
            cfgs.append(GemmConfig(block_m=64, block_n=256, stages=4, pingpong=True,
                                   activation="silu_and_mul" if silu else None, dtype="fp16", gather=gather))
    if QUICK:
        cfgs = cfgs[::3]
    return cfgs


BENCH_MODELS = [("Mixtral-8x7B", 4096, 14336, 8, 2), ("Qwen3-30B-A3B", 2048, 768, 128, 8)]
BENCH_TS = [1, 16, 128, 1024, 4096] if not QUICK else [1, 128, 4096]


def bench_configs(sms: int) -> list[GemmConfig]:
    """The configurations bench_suite will pick (choose_config depends only on T * top-k)."""
    cfgs = []
    for _, h, inter, e, topk in BENCH_MODELS:
        for t in BENCH_TS:
            cfgs.append(choose_config(t * topk, e, 2 * inter, h, "bf16", "silu_and_mul", True, num_sms=sms))
            cfgs.append(choose_config(t * topk, e, h, inter, "bf16", None, False, num_sms=sms))
    return cfgs


def correctness_suite() -> None:
    edge = [0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129]
    for cfg in correctness_configs():
        if elapsed() > TIME_BUDGET_S * 0.55:
            RESULTS["errors"].append({"where": "correctness", "error": "time budget: remaining configs skipped"})
            log("[correctness] time budget reached, skipping the remaining configurations")
            break
        cases = [
            ("edge_counts", edge, 320, 200, True, None),           # N, K not multiples of the tile
            ("edge_counts_grid1", edge, 320, 200, True, 1),        # all tiles through one block
            ("one_expert_all_rows", [0, 0, 300, 0], 256, 1024, False, None),
            ("long_k_grid3", [5, 70, 0, 200], 384, 2048, True, 3),
        ]
        if cfg.swap_ab:
            cases.append(("decode_like", [1, 2, 0, 3, 1, 7, 8, 9], 512, 512, True, None))
        for label, counts, n, k, perm, grid in cases:
            try:
                rec = run_case(cfg, counts, n, k, perm, grid, label)
            except Fatal:
                raise
            except Exception as e:  # noqa: BLE001
                rec = {"kernel": cfg.kernel_name, "case": label, "ok": False, "error": f"{type(e).__name__}: {e}"}
                traceback.print_exc()
            RESULTS["correctness"].append(rec)
            status = "ok  " if rec.get("ok") else "FAIL"
            log(f"[check] {status} {cfg.kernel_name:<52} {label:<22} rel_err={rec.get('rel_err', float('nan')):.2e} "
                f"nan_rows={rec.get('nan_rows', '-')}" + (f" {rec.get('error', '')}" if "error" in rec else "")
                + (f" first_bad={rec['first_bad_task']}" if "first_bad_task" in rec else ""))
            if "error" in rec and "NVRTC" in rec["error"]:
                break  # the configuration does not compile: no point in other cases
    # interleave_gate_up against vLLM's [gate; up] layout.
    try:
        dev = torch.device("cuda")
        cfg = GemmConfig(block_m=128, block_n=128, stages=6, activation="silu_and_mul", gather=True)
        e, i, k = 3, 96, 256
        w1 = (torch.randn(e, 2 * i, k, device=dev) / 16).to(torch.bfloat16)
        w_int = interleave_gate_up(w1)
        counts = [130, 0, 41]
        t_rows = 100
        a = torch.randn(t_rows, k, device=dev).to(torch.bfloat16)
        gidx = torch.randint(0, t_rows, (sum(counts),), device=dev, dtype=torch.int32)
        out = torch.full((sum(counts), i), float("nan"), device=dev, dtype=torch.bfloat16)
        plan = build_plan(torch.tensor(counts, device=dev), torch.arange(e, device=dev), 2 * i, cfg)
        get_kernel(cfg).launch(weight_tma_descriptor(w_int, cfg), token_tma_descriptor(a, cfg), a, k, out, gidx,
                               plan, 2 * i, k, 7)
        sync_or_die("interleave check")
        x = a[gidx.long()].float()
        refs, s = [], 0
        for ei, m in enumerate(counts):
            gate = x[s:s + m] @ w1[ei, :i].float().t()
            up = x[s:s + m] @ w1[ei, i:].float().t()
            refs.append(torch.nn.functional.silu(gate) * up)
            s += m
        ref = torch.cat(refs)
        err = (out.float() - ref).norm().item() / ref.norm().item()
        rec = {"kernel": cfg.kernel_name, "case": "interleave_gate_up_vs_vllm_w1", "rel_err": err, "ok": err < 1e-2}
    except Fatal:
        raise
    except Exception as e:  # noqa: BLE001
        rec = {"case": "interleave_gate_up_vs_vllm_w1", "ok": False, "error": f"{type(e).__name__}: {e}"}
    RESULTS["correctness"].append(rec)
    log(f"[check] {'ok  ' if rec.get('ok') else 'FAIL'} interleave_gate_up vs vLLM w1: {rec}")


# --------------------------------------------------------------------------------------------
# Benchmark
# --------------------------------------------------------------------------------------------

_FLUSH: torch.Tensor | None = None


def flush_l2() -> None:
    global _FLUSH
    if _FLUSH is None:
        _FLUSH = torch.empty(256 * 1024 * 1024 // 4, dtype=torch.float32, device="cuda")
    _FLUSH.zero_()


def time_fn(fn, reps: int = 20, warmup: int = 3) -> float:
    """Median milliseconds of fn() over reps runs, L2 flushed before each."""
    for _ in range(warmup):
        fn()
    sync_or_die("warm-up")
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for i in range(reps):
        flush_l2()
        starts[i].record()
        fn()
        ends[i].record()
    sync_or_die("timing")
    ts = sorted(s.elapsed_time(e) for s, e in zip(starts, ends))
    return ts[len(ts) // 2]


def grouped_mm_peer(a_rows: torch.Tensor, w: torch.Tensor, counts: torch.Tensor):
    """torch._grouped_mm on pre-grouped rows (no gather, no activation), or None."""
    if not hasattr(torch, "_grouped_mm"):
        return None
    offs = torch.cumsum(counts, 0).to(torch.int32)
    wt = w.transpose(-2, -1)  # [E, K, N], K-major storage

    def fn():
        return torch._grouped_mm(a_rows, wt, offs=offs)

    return fn


def bench_suite() -> None:
    dev = torch.device("cuda")
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    models = BENCH_MODELS
    ts = BENCH_TS
    for name, h, inter, e, topk in models:
        if elapsed() > TIME_BUDGET_S:
            break
        # Weights: w1 interleaved [E, 2I, H] (gate/up), w2 [E, H, I] (down).
        w1 = (torch.randn(e, 2 * inter, h, device=dev, dtype=torch.bfloat16) / math.sqrt(h))
        w2 = (torch.randn(e, h, inter, device=dev, dtype=torch.bfloat16) / math.sqrt(inter))
        for t in ts:
            if elapsed() > TIME_BUDGET_S:
                RESULTS["errors"].append({"where": "benchmark", "error": "time budget: remaining shapes skipped"})
                log("[bench] time budget reached")
                break
            counts, gather_idx = random_routing(t, e, topk, dev)
            m_total = t * topk
            x = torch.randn(t, h, device=dev, dtype=torch.bfloat16)
            act = torch.randn(m_total, inter, device=dev, dtype=torch.bfloat16)  # GEMM2 input, grouped
            active = int((counts > 0).sum())
            for gemm, w, n, k, a, gidx, silu in (
                ("gate_up", w1, 2 * inter, h, x, gather_idx, True),
                ("down", w2, h, inter, act, None, False),
            ):
                rec = {"model": name, "T": t, "gemm": gemm, "M_total": m_total, "N": n, "K": k, "active_experts": active}
                try:
                    cfg = choose_config(m_total, e, n, k, "bf16", "silu_and_mul" if silu else None, gidx is not None,
                                        num_sms=sms)
                    rec["kernel"] = cfg.kernel_name
                    kern = get_kernel(cfg)
                    plan = build_plan(counts, torch.arange(e, device=dev), n, cfg)
                    n_out = n // 2 if silu else n
                    out = torch.full((m_total, n_out), float("nan"), device=dev, dtype=torch.bfloat16)
                    w_map = weight_tma_descriptor(w, cfg)
                    a_map = token_tma_descriptor(a, cfg)
                    grid = min(plan["total_tiles"], sms)

                    def fn(kern=kern, w_map=w_map, a_map=a_map, a=a, out=out, gidx=gidx, plan=plan, n=n, k=k,
                           grid=grid):
                        kern.launch(w_map, a_map, a, a.stride(0), out, gidx, plan, n, k, grid)

                    # Correctness once before timing (subset of experts for the big shapes).
                    fn()
                    sync_or_die(f"{cfg.kernel_name} bench check")
                    a_rows = a[gidx.long()] if gidx is not None else a
                    cl = counts.tolist()
                    ref = reference(a_rows, w, cl, list(range(e)), silu)
                    err = (out.float() - ref).norm().item() / max(ref.norm().item(), 1e-30)
                    rec["rel_err"] = err
                    rec["ok"] = bool(err < 1e-2)
                    del ref
                    ms = time_fn(fn)
                    flops = 2.0 * m_total * n * k
                    in_rows = t if gidx is not None else m_total
                    bytes_ = active * n * k * 2 + in_rows * k * 2 + m_total * n_out * 2
                    rec.update({"ms": ms, "tflops": flops / ms / 1e9, "gbps": bytes_ / ms / 1e6,
                                "floor_ms": max(flops / 755e12, bytes_ / 4.5e12) * 1e3})
                    rec["roofline_eff"] = rec["floor_ms"] / ms
                    peer = grouped_mm_peer(a_rows.contiguous(), w, counts)
                    if peer is not None:
                        try:
                            peer()
                            sync_or_die("torch._grouped_mm")
                            rec["grouped_mm_ms"] = time_fn(peer)
                            rec["speedup_vs_grouped_mm"] = rec["grouped_mm_ms"] / ms
                        except Fatal:
                            raise
                        except Exception as pe:  # noqa: BLE001
                            rec["grouped_mm_error"] = f"{type(pe).__name__}: {str(pe)[:200]}"
                except Fatal:
                    RESULTS["benchmark"].append(rec)
                    raise
                except Exception as ex:  # noqa: BLE001
                    rec["error"] = f"{type(ex).__name__}: {str(ex)[:500]}"
                    traceback.print_exc()
                RESULTS["benchmark"].append(rec)
                log("[bench] " + json.dumps({kk: (round(v, 4) if isinstance(v, float) else v) for kk, v in rec.items()}))
        del w1, w2
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------------------------
# Sweep: every candidate configuration per shape
# --------------------------------------------------------------------------------------------

SWEEP_MODELS = [  # name, H, I, E, top-k (GPU.md)
    ("Mixtral-8x7B", 4096, 14336, 8, 2),
    ("Qwen3-30B-A3B", 2048, 768, 128, 8),
    ("DeepSeek-V3", 7168, 2048, 256, 8),
    ("Qwen3-235B-A22B", 4096, 1536, 128, 8),
    ("GPT-OSS-120B", 2880, 2880, 128, 4),
]
SWEEP_TS = [1, 16, 128, 1024, 4096, 16384]
SWEEP_RESULTS: list = []


def sweep_shapes(sms: int):
    """(model, H, I, E, topk, T, gemm, n, k, silu, gather, candidates) for every sweep point."""
    for name, h, inter, e, topk in SWEEP_MODELS:
        for t in SWEEP_TS:
            for gemm, n, k, silu in (("gate_up", 2 * inter, h, True), ("down", h, inter, False)):
                act = "silu_and_mul" if silu else None
                cands = candidate_configs(t * topk, e, n, k, "bf16", act, silu, num_sms=sms)
                yield name, h, inter, e, topk, t, gemm, n, k, silu, silu, cands


def sweep_suite() -> None:
    dev = torch.device("cuda")
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    for name, h, inter, e, topk in SWEEP_MODELS:
        if elapsed() > SWEEP_BUDGET_S:
            break
        w1 = torch.randn(e, 2 * inter, h, device=dev, dtype=torch.bfloat16) / math.sqrt(h)
        w2 = torch.randn(e, h, inter, device=dev, dtype=torch.bfloat16) / math.sqrt(inter)
        for t in SWEEP_TS:
            if elapsed() > SWEEP_BUDGET_S:
                log("[sweep] time budget reached: stopping")
                RESULTS["errors"].append({"where": "sweep", "error": "time budget: remaining shapes skipped"})
                break
            counts, gather_idx = random_routing(t, e, topk, dev)
            m_total = t * topk
            x = torch.randn(t, h, device=dev, dtype=torch.bfloat16)
            act_in = torch.randn(m_total, inter, device=dev, dtype=torch.bfloat16)
            active = int((counts > 0).sum())
            cl = counts.tolist()
            for gemm, w, n, k, a, gidx, silu in (
                ("gate_up", w1, 2 * inter, h, x, gather_idx, True),
                ("down", w2, h, inter, act_in, None, False),
            ):
                if elapsed() > SWEEP_BUDGET_S:
                    break
                act = "silu_and_mul" if silu else None
                chosen = choose_config(m_total, e, n, k, "bf16", act, gidx is not None, num_sms=sms)
                cands = candidate_configs(m_total, e, n, k, "bf16", act, gidx is not None, num_sms=sms)
                n_out = n // 2 if silu else n
                flops = 2.0 * m_total * n * k
                in_rows = t if gidx is not None else m_total
                bytes_ = active * n * k * 2 + in_rows * k * 2 + m_total * n_out * 2
                floor_ms = max(flops / 755e12, bytes_ / 4.5e12) * 1e3
                rec = {"model": name, "T": t, "gemm": gemm, "M_total": m_total, "N": n, "K": k,
                       "active_experts": active, "floor_ms": floor_ms, "chosen": chosen.kernel_name, "configs": []}
                a_rows = a[gidx.long()] if gidx is not None else a
                ref = reference(a_rows, w, cl, list(range(e)), silu)
                ref_norm = max(ref.norm().item(), 1e-30)
                out = torch.empty((m_total, n_out), device=dev, dtype=torch.bfloat16)
                for cfg in cands:
                    if elapsed() > SWEEP_BUDGET_S + 10:
                        break
                    c = {"kernel": cfg.kernel_name}
                    try:
                        kern = get_kernel(cfg)
                        plan = build_plan(counts, torch.arange(e, device=dev), n, cfg)
                        w_map = weight_tma_descriptor(w, cfg)
                        a_map = token_tma_descriptor(a, cfg)
                        grid = min(plan["total_tiles"], sms)

                        def fn(kern=kern, w_map=w_map, a_map=a_map, a=a, gidx=gidx, plan=plan, grid=grid, n=n, k=k):
                            kern.launch(w_map, a_map, a, a.stride(0), out, gidx, plan, n, k, grid)

                        out.fill_(float("nan"))
                        fn()
                        sync_or_die(f"{cfg.kernel_name} sweep check")
                        err = (out.float() - ref).norm().item() / ref_norm
                        c["rel_err"] = err
                        c["ok"] = bool(err < 1e-2)
                        if c["ok"]:
                            ms = time_fn(fn, reps=10, warmup=2)
                            c.update({"ms": ms, "tflops": flops / ms / 1e9, "roofline_eff": floor_ms / ms})
                    except Fatal:
                        rec["configs"].append(c)
                        SWEEP_RESULTS.append(rec)
                        raise
                    except Exception as ex:  # noqa: BLE001
                        c["error"] = f"{type(ex).__name__}: {str(ex)[:300]}"
                        c["ok"] = False
                    rec["configs"].append(c)
                    log(f"[sweep] {name:<15} T={t:<6} {gemm:<8} {cfg.kernel_name:<50} "
                        + (f"{c['ms']:.4f} ms eff {c['roofline_eff']:.2f}" if "ms" in c else
                           f"FAILED rel_err={c.get('rel_err')} {c.get('error', '')}"))
                del ref
                peer = grouped_mm_peer(a_rows.contiguous(), w, counts)
                if peer is not None:
                    try:
                        peer()
                        sync_or_die("torch._grouped_mm")
                        rec["grouped_mm_ms"] = time_fn(peer, reps=10, warmup=2)
                    except Fatal:
                        raise
                    except Exception as pe:  # noqa: BLE001
                        rec["grouped_mm_error"] = f"{type(pe).__name__}: {str(pe)[:200]}"
                timed = [c for c in rec["configs"] if "ms" in c]
                if timed:
                    best = min(timed, key=lambda c: c["ms"])
                    rec["best"] = best["kernel"]
                    rec["best_ms"] = best["ms"]
                    rec["best_eff"] = floor_ms / best["ms"]
                    rec["chosen_ms"] = next((c["ms"] for c in timed if c["kernel"] == chosen.kernel_name), None)
                SWEEP_RESULTS.append(rec)
                a_rows = out = None
        del w1, w2
        torch.cuda.empty_cache()


def print_sweep() -> None:
    log("\n==== sweep (bf16; eff = roofline efficiency of the best; x gmm = gmm ms / best ms) ====")
    log(f"{'model':<15} {'T':>6} {'gemm':<8} {'best':<50} {'ms':>8} {'eff':>5} {'chosen ms':>9} {'gmm ms':>8} "
        f"{'x gmm':>6}  chosen")
    for r in SWEEP_RESULTS:
        if "best" not in r:
            log(f"{r['model']:<15} {r['T']:>6} {r['gemm']:<8} (nothing timed) {[c.get('error', c.get('rel_err')) for c in r['configs']]}")
            continue
        g = r.get("grouped_mm_ms", float("nan"))
        ch = r.get("chosen_ms")
        log(f"{r['model']:<15} {r['T']:>6} {r['gemm']:<8} {r['best'].replace('sb_grouped_gemm_', ''):<50} "
            f"{r['best_ms']:>8.4f} {r['best_eff']:>5.2f} {ch if ch is not None else float('nan'):>9.4f} {g:>8.4f} "
            f"{g / r['best_ms']:>6.2f}  {r['chosen'].replace('sb_grouped_gemm_', '')}")
    effs = [r["best_eff"] for r in SWEEP_RESULTS if "best_eff" in r]
    if effs:
        log(f"geomean best eff {math.exp(sum(math.log(v) for v in effs) / len(effs)):.3f} over {len(effs)} shapes")
    bad = [(r["model"], r["T"], r["gemm"], c["kernel"], c.get("rel_err"), c.get("error"))
           for r in SWEEP_RESULTS for c in r.get("configs", []) if not c.get("ok")]
    log(f"failed candidates: {len(bad)}")
    for b in bad:
        log(f"  FAIL {b}")
    out = os.environ.get("OUT")
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "gemm_sweep.json"), "w") as f:
            json.dump({"device": RESULTS.get("device"), "sweep": SWEEP_RESULTS, "compile": RESULTS["compile"],
                       "errors": RESULTS["errors"], "seconds": elapsed()}, f, indent=1, default=str)
    log(f"\ntotal {elapsed():.1f}s")


def print_tables() -> None:
    log("\n==== correctness ====")
    fails = [r for r in RESULTS["correctness"] if not r.get("ok")]
    log(f"{len(RESULTS['correctness']) - len(fails)} / {len(RESULTS['correctness'])} cases ok")
    for r in fails:
        log(f"  FAIL {r.get('kernel', '?')} {r.get('case')} rel_err={r.get('rel_err')} nan_rows={r.get('nan_rows')} "
            f"{r.get('error', '')} {r.get('first_bad_task', '')}")
    log("\n==== ptxas ====")
    for name, c in RESULTS["compile"].items():
        log(f"  {name:<56} " + " | ".join(s for s in c["ptxas"] if "warning" not in s.lower()))
    log("\n==== benchmark (bf16) ====")
    hdr = f"{'model':<14} {'T':>5} {'gemm':<8} {'kernel':<50} {'ms':>8} {'TFLOP/s':>8} {'GB/s':>7} {'eff':>5} {'gmm ms':>8} {'x gmm':>6} {'err':>8}"
    log(hdr)
    for r in RESULTS["benchmark"]:
        if "ms" not in r:
            log(f"{r['model']:<14} {r['T']:>5} {r['gemm']:<8} {r.get('kernel', '?'):<50} ERROR {r.get('error', '')[:80]}")
            continue
        log(f"{r['model']:<14} {r['T']:>5} {r['gemm']:<8} {r['kernel']:<50} {r['ms']:>8.4f} {r['tflops']:>8.1f} "
            f"{r['gbps']:>7.0f} {r['roofline_eff']:>5.2f} {r.get('grouped_mm_ms', float('nan')):>8.4f} "
            f"{r.get('speedup_vs_grouped_mm', float('nan')):>6.2f} {r.get('rel_err', float('nan')):>8.1e}")
    log(f"\ntotal {elapsed():.1f}s")


def main() -> int:
    if not torch.cuda.is_available():
        log("no CUDA device: nothing to check")
        return 0
    # Compile every configuration in parallel before CUDA is initialised in this process
    # (132 SMs assumed here; a configuration missed this way is compiled on first use).
    if SWEEP:
        precompile([c for *_, cands in sweep_shapes(132) for c in cands])
    else:
        precompile(correctness_configs() + bench_configs(132))
    torch.cuda.init()
    torch.zeros(1, device="cuda")  # torch's primary context is now current
    cu_check(driver.cuInit(0), "cuInit")
    cap = torch.cuda.get_device_capability()
    RESULTS["device"] = {"name": torch.cuda.get_device_name(), "capability": cap, "torch": torch.__version__,
                         "nvrtc": nvrtc.nvrtcVersion()[1:]}
    log(f"device {RESULTS['device']}")
    if cap != (9, 0):
        log("needs an sm_90 GPU (H100/H200)")
        return 0
    torch.manual_seed(0)
    status = 0
    try:
        if SWEEP:
            sweep_suite()
        else:
            correctness_suite()
            bench_suite()
    except Fatal as e:
        RESULTS["errors"].append({"where": "fatal", "error": str(e)})
        log(f"FATAL: {e} (the CUDA context is unusable; stopping)")
        status = 1
    except Exception as e:  # noqa: BLE001
        RESULTS["errors"].append({"where": "main", "error": f"{type(e).__name__}: {e}"})
        traceback.print_exc()
        status = 1
    finally:
        if SWEEP:
            print_sweep()
        else:
            print_tables()
            write_json()
    if status:
        sys.stdout.flush()
        os._exit(status)  # a hung kernel would block a normal interpreter exit
    return 0


if __name__ == "__main__":
    sys.exit(main())
