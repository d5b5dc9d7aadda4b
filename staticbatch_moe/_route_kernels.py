"""The routing kernels of ``cuda_src/staticbatch/moe/routing.cuh``: sources, compile, launch.

Four small kernels, each compiled once per configuration (memoised by source): expert
selection (one warp per token), the routing plan's count / scan / scatter, and the combine.
The callers in :mod:`staticbatch_moe.layer` and :mod:`staticbatch_moe.routing` check the
arguments; these helpers only build and launch, on torch's current stream, with no host sync.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

import staticbatch as sb

#: Most experts the device routing kernels handle (one scan block, a warp's registers).
MAX_EXPERTS = 1024
#: Most expert groups grouped top-k handles (one lane per group).
MAX_GROUPS = 32
#: Warps per block of the count and scatter kernels (``kRouteWarps`` in routing.cuh).
ROUTE_WARPS = 8
#: Shared memory the scan kernel may use to stage the chunk histograms (int32 cells).
_SCAN_CELLS = 16384

_SCORING = {"softmax": 0, "sigmoid": 1, "softmax_selected": 2}
_CTYPES = {"torch.float32": "float", "torch.bfloat16": "__nv_bfloat16", "torch.float16": "__half"}
_ID_CTYPES = {"torch.int32": "int32_t", "torch.int64": "int64_t"}
_TAGS = {"float": "f32", "__nv_bfloat16": "bf16", "__half": "f16", "int32_t": "i32", "int64_t": "i64"}

_HEADER = "#include <staticbatch/moe/routing.cuh>\nusing namespace staticbatch;\n"


_capability: dict[int, tuple[int, int]] = {}


def available(t: Any) -> bool:
    """Whether the routing kernels run for tensor ``t``: on a Hopper GPU (sm_90), like the GEMM."""
    import torch

    if not isinstance(t, torch.Tensor) or t.device.type != "cuda":
        return False
    index = _device_index(t)
    cap = _capability.get(index)
    if cap is None:
        cap = _capability[index] = torch.cuda.get_device_capability(index)
    return cap == (9, 0)


_loaded: dict[tuple[str, int], Any] = {}


def _kernel(source: str, name: str, device_index: int) -> Any:
    """The loaded kernel; names are unique per source, so cached by (name, device)."""
    kernel = _loaded.get((name, device_index))
    if kernel is None:
        kernel = _loaded[(name, device_index)] = sb.load(sb.compile_source(source, name), device_index)
    return kernel


@functools.cache
def _num_sms(device_index: int) -> int:
    return sb.device_properties(device_index).num_sms


def _device_index(t: Any) -> int:
    import torch

    return t.device.index if t.device.index is not None else torch.cuda.current_device()


@functools.cache
def select_source(logit_dtype: str, num_experts: int, scoring: str, renormalize: bool, grouped: bool) -> tuple[str, str]:
    """Source and entry name of the selection kernel for one configuration."""
    ctype = _CTYPES[logit_dtype]
    per_lane = max(1, math.ceil(num_experts / 32))
    name = (f"sb_moe_select_{_TAGS[ctype]}_p{per_lane}_{scoring}{'_renorm' if renormalize else ''}"
            f"{'_grouped' if grouped else ''}")
    source = _HEADER + f"""extern "C" __global__ void __launch_bounds__(256) {name}(
    const {ctype}* logits, int64_t ld, int32_t num_tokens, int32_t num_experts, int32_t top_k, int32_t num_groups,
    int32_t topk_group, const float* bias, float scale, float* weights, int32_t* ids) {{
  moe::select_experts<{ctype}, {per_lane}, {_SCORING[scoring]}, {str(renormalize).lower()}, {str(grouped).lower()}>(
      logits, ld, num_tokens, num_experts, top_k, num_groups, topk_group, bias, scale, weights, ids);
}}
"""
    return source, name


def select(logits: Any, top_k: int, scoring: str, renormalize: bool, num_expert_group: int | None,
           topk_group: int | None, bias: Any, scale: float) -> tuple[Any, Any]:
    """(weights float32 [T, k], ids int32 [T, k]) from logits [T, E] on a GPU."""
    import torch

    t, e = logits.shape
    if logits.stride(1) != 1:
        logits = logits.contiguous()
    weights = torch.empty(t, top_k, dtype=torch.float32, device=logits.device)
    ids = torch.empty(t, top_k, dtype=torch.int32, device=logits.device)
    if t == 0:
        return weights, ids
    grouped = num_expert_group is not None
    source, name = select_source(str(logits.dtype), e, scoring, renormalize, grouped)
    dev = _device_index(logits)
    kernel = _kernel(source, name, dev)
    warps = ROUTE_WARPS
    blocks = min(math.ceil(t / warps), _num_sms(dev) * 8)
    kernel.launch(blocks, 32 * warps, 0, [
        logits, np.int64(logits.stride(0)), np.int32(t), np.int32(e), np.int32(top_k),
        np.int32(num_expert_group or 1), np.int32(topk_group or 1),
        None if bias is None else bias.float().contiguous(), np.float32(scale), weights, ids,
    ])
    return weights, ids


# The plan's outputs (moe::PlanOut), as kernel parameters and as the struct built from them:
# the per-expert and per-task arrays, then for each of PLAN_TILINGS tilings i its block_m bm<i>
# (0: unused), tiles per token block nb<i>, row range (lo<i>, hi<i>] and prefix sums.
PLAN_TILINGS = 4
_INT32_MAX = 2**31 - 1
_PLAN_OUT_ARGS = ("int32_t* expert_counts, int64_t* expert_starts, int32_t* task_expert, int32_t* task_rows, "
                  "int64_t* task_starts, " + ", ".join(
                      f"int32_t bm{i}, int32_t nb{i}, int32_t lo{i}, int32_t hi{i}, int32_t* tile_offsets{i}"
                      for i in range(PLAN_TILINGS)))
_PLAN_OUT = ("moe::PlanOut{expert_counts, expert_starts, task_expert, task_rows, task_starts, "
             + ", ".join("{" + ", ".join(f"{f}{i}" for i in range(PLAN_TILINGS)) + "}"
                         for f in ("bm", "nb", "lo", "hi", "tile_offsets")) + "}")
#: Most (token, slot) entries the one-block plan kernel takes (decode and small batches).
SMALL_PLAN_ENTRIES = 2048


@functools.cache
def _plan_sources(id_ctype: str) -> dict[str, tuple[str, str]]:
    tag = _TAGS[id_ctype]
    count = f"sb_moe_route_count_{tag}"
    scatter = f"sb_moe_route_scatter_{tag}"
    scan = "sb_moe_route_scan"
    small = f"sb_moe_route_small_{tag}"
    return {
        "count": (_HEADER + f"""extern "C" __global__ void __launch_bounds__(256) {count}(
    const {id_ctype}* ids, int64_t num_entries, int64_t chunk, int32_t num_experts, int32_t* hist) {{
  moe::route_count(ids, num_entries, chunk, num_experts, hist);
}}
""", count),
        "scan": (_HEADER + f"""extern "C" __global__ void __launch_bounds__(1024) {scan}(
    int32_t* hist, int32_t num_chunks, int32_t num_experts, {_PLAN_OUT_ARGS}) {{
  moe::route_scan(hist, num_chunks, num_experts, {_PLAN_OUT});
}}
""", scan),
        "small": (_HEADER + f"""extern "C" __global__ void __launch_bounds__(1024) {small}(
    const {id_ctype}* ids, int32_t num_entries, int32_t top_k, int32_t num_experts, int32_t* gather_idx,
    int32_t* slot_to_row, {_PLAN_OUT_ARGS}) {{
  moe::route_small(ids, num_entries, top_k, num_experts, gather_idx, slot_to_row, {_PLAN_OUT});
}}
""", small),
        "scatter": (_HEADER + f"""extern "C" __global__ void __launch_bounds__(256) {scatter}(
    const {id_ctype}* ids, int64_t num_entries, int64_t chunk, int32_t top_k, int32_t num_experts, const int32_t* hist,
    int32_t* gather_idx, int32_t* slot_to_row) {{
  moe::route_scatter(ids, num_entries, chunk, top_k, num_experts, hist, gather_idx, slot_to_row);
}}
""", scatter),
    }


def chunking(num_entries: int, num_experts: int) -> tuple[int, int]:
    """(entries per chunk, number of chunks) of the count / scatter kernels.

    Chunks are whole rounds of the scatter's warps (a multiple of 256 entries) and few enough
    that the scan kernel stages every (chunk, expert) count in shared memory.
    """
    max_chunks = max(1, _SCAN_CELLS // num_experts)
    step = 32 * ROUTE_WARPS
    chunk = max(4 * step, math.ceil(num_entries / max_chunks))
    chunk = math.ceil(chunk / step) * step
    return chunk, max(1, math.ceil(num_entries / chunk))


def plan(ids: Any, num_experts: int, tilings: list[tuple]) -> dict[str, Any]:
    """The routing plan's tensors from topk_ids [T, k] on a GPU; ``tilings`` lists up to
    PLAN_TILINGS (block_m, tiles per block of rows[, lo, hi]) whose tile prefix sums come out of the
    same pass (only tasks with lo < m <= hi get tiles; hi None: no bound)."""
    import torch

    t, k = ids.shape
    n = t * k
    e = num_experts
    dev = ids.device
    flat = ids.reshape(-1)
    if not flat.is_contiguous():
        flat = flat.contiguous()
    id_ctype = _ID_CTYPES[str(ids.dtype)]
    chunk, chunks = chunking(n, e)
    i32 = dict(dtype=torch.int32, device=dev)
    i64 = dict(dtype=torch.int64, device=dev)
    out: dict[str, Any] = {
        "expert_counts": torch.empty(e, **i32),
        "expert_starts": torch.empty(e + 1, **i64),
        "gather_idx": torch.empty(n, **i32),
        "slot_to_row": torch.empty(n, **i32),
        "task_expert": torch.empty(e, **i32),
        "task_rows": torch.empty(e, **i32),
        "task_starts": torch.empty(e + 1, **i64),
        "tile_offsets": [torch.empty(e + 1, **i32) for _ in tilings],
    }
    index = _device_index(ids)
    sources = _plan_sources(id_ctype)
    plan_out = [out["expert_counts"], out["expert_starts"], out["task_expert"], out["task_rows"], out["task_starts"]]
    for i in range(PLAN_TILINGS):
        if i < len(tilings):
            bm, nb, lo, hi = (tuple(tilings[i]) + (0, None))[:4]
            plan_out += [np.int32(bm), np.int32(nb), np.int32(lo), np.int32(_INT32_MAX if hi is None else hi),
                         out["tile_offsets"][i]]
        else:
            plan_out += [np.int32(0), np.int32(0), np.int32(0), np.int32(0), None]
    threads = max(32, math.ceil(e / 32) * 32)
    if n <= SMALL_PLAN_ENTRIES:
        _kernel(*sources["small"], index).launch(1, max(threads, 256), 0, [
            flat, np.int32(n), np.int32(k), np.int32(e), out["gather_idx"], out["slot_to_row"], *plan_out,
        ])
    else:
        hist = torch.empty(chunks * e, **i32)
        _kernel(*sources["count"], index).launch(chunks, 256, 4 * e, [flat, np.int64(n), np.int64(chunk), np.int32(e), hist])
        _kernel(*sources["scan"], index).launch(1, threads, 4 * chunks * e, [hist, np.int32(chunks), np.int32(e), *plan_out])
        _kernel(*sources["scatter"], index).launch(chunks, 32 * ROUTE_WARPS, 4 * ROUTE_WARPS * e, [
            flat, np.int64(n), np.int64(chunk), np.int32(k), np.int32(e), hist, out["gather_idx"], out["slot_to_row"],
        ])
    out["slot_to_row"] = out["slot_to_row"].view(t, k)
    return out


@functools.cache
def combine_source(elem_dtype: str, out_dtype: str, bias: bool) -> tuple[str, str]:
    elem, outc = _CTYPES[elem_dtype], _CTYPES[out_dtype]
    name = f"sb_moe_combine_{_TAGS[elem]}_{_TAGS[outc]}{'_bias' if bias else ''}"
    source = _HEADER + f"""extern "C" __global__ void __launch_bounds__(256) {name}(
    const {elem}* y, const int32_t* slot_to_row, const float* weights, const {elem}* bias, const int32_t* ids,
    int32_t top_k, int32_t h, {outc}* out) {{
  moe::combine<{elem}, {outc}, {str(bias).lower()}>(y, slot_to_row, weights, bias, ids, top_k, h, out);
}}
"""
    return source, name


def combine(y: Any, slot_to_row: Any, weights: Any, out: Any, bias: Any = None, ids: Any = None) -> Any:
    """out [T, H] = weighted sum over slots of y's rows (+ bias of the slot's expert), float32."""
    t, k = slot_to_row.shape
    h = y.shape[1]
    if t == 0:
        return out
    source, name = combine_source(str(y.dtype), str(out.dtype), bias is not None)
    kernel = _kernel(source, name, _device_index(y))
    threads = min(256, max(32, math.ceil(h / 8 / 32) * 32))
    kernel.launch(t, threads, 0, [y, slot_to_row, weights, bias, ids, np.int32(k), np.int32(h), out])
    return out


def all_sources() -> list[tuple[str, str]]:
    """A representative set of configurations (every kernel, id type, scoring, grouping, logit
    and output dtype, and the smallest and largest register arrays), for the compile tests."""
    found: list[tuple[str, str]] = []
    for id_ctype in _ID_CTYPES.values():
        found.extend(_plan_sources(id_ctype).values())
    for scoring in _SCORING:
        for grouped in (False, True):
            found.append(select_source("torch.bfloat16", 256, scoring, scoring != "softmax_selected", grouped))
    found.append(select_source("torch.float32", 8, "softmax", False, False))
    found.append(select_source("torch.float16", MAX_EXPERTS, "softmax", True, False))
    for elem in ("torch.bfloat16", "torch.float16"):
        for out in (elem, "torch.float32"):
            for bias in (False, True):
                found.append(combine_source(elem, out, bias))
    unique = {name: (src, name) for src, name in found}
    return list(unique.values())
