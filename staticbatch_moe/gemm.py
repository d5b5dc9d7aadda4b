"""Grouped expert GEMMs: one statically batched Hopper kernel for all experts of a layer.

``grouped_gemm(a, w, plan)`` computes, for every expert e, ``out[rows of e] = act(a[token
rows of e] @ w[e].T)`` in one launch: a persistent grid whose blocks find their (expert,
tile) by binary search over the plan's tile prefix sums. Token rows are gathered inside the
kernel (no permute copy); the weight tiles stream in by TMA. On the CPU, or on a GPU that is
not Hopper, the same call runs :func:`grouped_gemm_reference`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import staticbatch as sb
from staticbatch_moe import _gemm_config as cfgmod
from staticbatch_moe._gemm_config import GemmConfig, TileClass
from staticbatch_moe.routing import RoutePlan

__all__ = [
    "GateUpWeight",
    "GemmConfig",
    "TileClass",
    "TiledWeight",
    "grouped_gemm",
    "grouped_gemm_reference",
    "grouped_mlp",
    "grouped_mlp_reference",
    "pack_gate_up",
    "pack_weight",
]

logger = logging.getLogger("staticbatch.moe")

_ACTIVATIONS = (None, "silu_and_mul")
#: Dynamic shared memory a launch requests at the least: more than half of an sm_90 SM's 228 KB,
#: so that blocks of the persistent kernel never share an SM.
ONE_BLOCK_SMEM = 120 * 1024

#: Let a staged launch that covers every task copy its rows token by token (each token's row read
#: once, written to each of its top-k slots' rows) instead of row by row (each grouped row read from
#: its token: a token's row read top-k times), where there is a group of tokens for every warp of
#: the grid. A launch of one tile class among several copies its own tasks' rows, row by row. On
#: the H200 (2026-11-28, benchmarks/results/dev_stage_by_token_check.json, gate/up GEMMs, three
#: interleaved repeats, bit-identical outputs): T = 16384 Qwen3-30B-A3B 1.544 -> 1.495 ms,
#: Qwen3-235B-A22B 5.638 -> 5.425, DeepSeek-V3 13.95 -> 13.59; T = 4096 1-2 % faster; but with fewer
#: token groups than warps slower (Qwen3-30B T = 1024, 512 groups: 0.238 -> 0.251 ms).
STAGE_BY_TOKEN = True


def _stage_units_by_token(num_tokens: int, k: int) -> int:
    """Token groups of stage_rows_by_token (grouped_gemm.cuh): tokens per group as many rows as
    keep 16 pieces of 16 bytes per lane of a warp in flight."""
    pieces = k // 8
    group = 1 if pieces >= 32 * 16 else 32 * 16 // pieces
    return -(-num_tokens // group)
_descriptor_cache: dict[tuple, sb.ByValue] = {}
_token_cache: dict[tuple, sb.ByValue] = {}
_kernels: dict[tuple, tuple[Any, int]] = {}
_warned_fallback: set[str] = set()
# Counters that kernels leave as they found them: split-K arrival counters (all zero) and the
# staged gather's grid barrier (word 0 zero, word 1 a generation number). One int32 buffer per
# (use, device, stream), zeroed once and grown on demand. Buffers that were outgrown are kept
# alive (a captured CUDA graph may still use them).
_stream_counters: dict[tuple[str, int, int], Any] = {}
_retired_counters: list[Any] = []

#: Launch the kernels whose blocks wait for one another (the staged gather's grid barrier, the
#: one-launch MLP's flags) as cooperative launches: the driver then checks that every block can
#: be resident at once and refuses the launch (a LaunchError) where it cannot, e.g. under MPS
#: with an SM limit, instead of the grid hanging. One switch, for experiments.
USE_COOPERATIVE_LAUNCH = True


@dataclass(frozen=True, eq=False)
class TiledWeight:
    """A weight ``[E, N, K]`` stored tiled, once at load time, for a faster weight stream.

    ``tiles`` is ``[E, ceil(N / 64), ceil(K / 64), 64, 64]`` (zeros past N and K): each 64 x 64
    block holds its rows in the order the kernel's shared memory wants them (see
    :func:`~staticbatch_moe._gemm_config.tile_weight`), and a block's k-blocks follow each other.
    The kernel then copies each block front to back with 1-D bulk copies instead of reading 128
    bytes from each of 64-256 rows per tensor-map box: 2.5-6 % faster at decode on the H200,
    about level from T = 4096 (docs/performance.md, "Eighteenth session"). :class:`MoE` stores
    bf16 and fp16 weights this way by default. Build it with :func:`pack_weight`.
    """

    tiles: Any
    n: int
    k: int

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(E, N, K)`` of the weight it holds."""
        return (int(self.tiles.shape[0]), self.n, self.k)

    @property
    def dtype(self) -> Any:
        return self.tiles.dtype

    @property
    def device(self) -> Any:
        return self.tiles.device

    def unpack(self) -> Any:
        """The weight as ``[E, N, K]``."""
        return cfgmod.untile_weight(self.tiles, self.n, self.k)


def pack_weight(w: Any) -> TiledWeight:
    """Store ``w`` ``[E, N, K]`` (bf16 or fp16) as a :class:`TiledWeight`. Do it once, at load
    time; :func:`grouped_gemm` takes it wherever it takes ``w``. It costs ``(ceil(N / 64) * 64) x
    (ceil(K / 64) * 64)`` elements per expert."""
    import torch

    if not isinstance(w, torch.Tensor) or w.dim() != 3:
        raise sb.InvalidArgumentError(f"`w` must be a [E, N, K] tensor (got {getattr(w, 'shape', type(w).__name__)})")
    if w.dtype not in (torch.bfloat16, torch.float16):
        raise sb.InvalidArgumentError(f"`w` must be torch.bfloat16 or torch.float16 (got {w.dtype})")
    return TiledWeight(cfgmod.tile_weight(w), int(w.shape[1]), int(w.shape[2]))


@dataclass(frozen=True, eq=False)
class GateUpWeight:
    """A gate/up weight reordered once, at load time, for the fused ``silu_and_mul`` epilogue.

    ``packed`` is ``[E, 2I, K]`` with gate and up rows interleaved in groups of 8:
    ``[gate 0:8, up 0:8, gate 8:16, up 8:16, ...]``, so that every output tile of the GEMM
    holds matching gate and up columns in the same thread's registers; or that interleaved
    weight as a :class:`TiledWeight` (``pack_gate_up(w1, tiled=True)``). Build it with
    :func:`pack_gate_up`.
    """

    packed: Any

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.packed.shape)  # type: ignore[return-value]

    def unpack(self) -> Any:
        """``[E, 2I, K]`` in the usual ``[gate; up]`` row order."""
        packed = self.packed.unpack() if isinstance(self.packed, TiledWeight) else self.packed
        return cfgmod.deinterleave_gate_up(packed)


def pack_gate_up(w1: Any, *, tiled: bool = False) -> GateUpWeight:
    """Reorder ``w1`` ``[E, 2I, K]`` (gate rows then up rows, vLLM's and HF's fused layout)
    for ``activation="silu_and_mul"``, and with ``tiled`` store it as a :class:`TiledWeight`.
    Do it once when the weights are loaded."""
    import torch

    if not isinstance(w1, torch.Tensor) or w1.dim() != 3:
        raise sb.InvalidArgumentError(f"`w1` must be a [E, 2I, K] tensor (got {getattr(w1, 'shape', type(w1).__name__)})")
    if w1.shape[1] % (2 * cfgmod.GATE_UP_GROUP):
        raise sb.InvalidArgumentError(f"`w1` must have 2I a multiple of 16 (got {w1.shape[1]})")
    packed = cfgmod.interleave_gate_up(w1)
    return GateUpWeight(pack_weight(packed) if tiled else packed)


def _silu_and_mul(x: Any) -> Any:
    import torch

    half = x.shape[-1] // 2
    return torch.nn.functional.silu(x[..., :half]) * x[..., half:]


def _dtype_tag(dtype: Any) -> str:
    import torch

    if dtype == torch.bfloat16:
        return "bf16"
    if dtype == torch.float16:
        return "fp16"
    raise sb.InvalidArgumentError(f"`a` and `w` must be torch.bfloat16 or torch.float16 (got {dtype})")


def _validate(a: Any, w: Any, plan: Any, gather: bool, activation: Any, out: Any) -> tuple[Any, int, int]:
    """Checks shared by the kernel and the reference; returns (weight tensor, n, n_out)."""
    import torch

    if not isinstance(plan, RoutePlan):
        raise sb.InvalidArgumentError(f"`plan` must be a RoutePlan from route_plan() (got {type(plan).__name__})")
    if activation not in _ACTIVATIONS:
        raise sb.InvalidArgumentError(f"`activation` must be one of {_ACTIVATIONS} (got {activation!r})")
    if activation == "silu_and_mul":
        if not isinstance(w, GateUpWeight):
            raise sb.InvalidArgumentError(
                "`w` must be a GateUpWeight from pack_gate_up(w1) when activation='silu_and_mul' "
                f"(got {type(w).__name__}); pack it once at load time"
            )
        weight = w.packed
    else:
        if isinstance(w, GateUpWeight):
            raise sb.InvalidArgumentError("`w` is a GateUpWeight (interleaved rows): pass activation='silu_and_mul'")
        weight = w
    tiled = isinstance(weight, TiledWeight)
    if not isinstance(a, torch.Tensor) or not (tiled or isinstance(weight, torch.Tensor)):
        raise sb.InvalidArgumentError("`a` must be a torch tensor and `w` a torch tensor or a TiledWeight")
    if a.dtype not in (torch.bfloat16, torch.float16, torch.float32):
        raise sb.InvalidArgumentError(
            f"`a` must be torch.bfloat16 or torch.float16 (or torch.float32 on the reference path) (got {a.dtype})"
        )
    if weight.dtype != a.dtype:
        raise sb.InvalidArgumentError(f"`w` must have the dtype of `a` ({a.dtype}) (got {weight.dtype})")
    if a.dim() != 2:
        raise sb.InvalidArgumentError(f"`a` must be 2-D [rows, K] (got shape {list(a.shape)})")
    if not tiled and weight.dim() != 3:
        raise sb.InvalidArgumentError(f"`w` must be 3-D [E, N, K] (got shape {list(weight.shape)})")
    e, n, k = weight.shape
    if e != plan.num_experts:
        raise sb.InvalidArgumentError(f"`w` must have num_experts={plan.num_experts} experts (got {e})")
    if a.shape[1] != k:
        raise sb.InvalidArgumentError(f"`a` must have K={k} columns to match `w` [E, N, K] (got {a.shape[1]})")
    rows = plan.num_tokens if gather else plan.num_rows
    if a.shape[0] != rows:
        what = "num_tokens" if gather else "num_tokens * top_k (grouped rows)"
        raise sb.InvalidArgumentError(f"`a` must have {what}={rows} rows with gather={gather} (got {a.shape[0]})")
    if a.device != weight.device or a.device != plan.device:
        raise sb.InvalidArgumentError(
            f"`a`, `w` and `plan` must be on one device (got {a.device}, {weight.device}, {plan.device})"
        )
    if a.numel() and a.stride(1) != 1:
        raise sb.InvalidArgumentError(f"`a` must have contiguous rows (stride 1 along K) (got strides {a.stride()})")
    stored = weight.tiles if tiled else weight
    if not stored.is_contiguous():
        raise sb.InvalidArgumentError(f"`w` must be contiguous (got strides {stored.stride()})")
    n_out = n // 2 if activation == "silu_and_mul" else n
    if out is not None:
        if not isinstance(out, torch.Tensor) or out.dtype != a.dtype or out.device != a.device:
            raise sb.InvalidArgumentError(f"`out` must be a {a.dtype} tensor on {a.device}")
        if tuple(out.shape) != (plan.num_rows, n_out) or not out.is_contiguous():
            raise sb.InvalidArgumentError(
                f"`out` must be contiguous with shape [{plan.num_rows}, {n_out}] (got {list(out.shape)}, "
                f"contiguous={out.is_contiguous()})"
            )
    return weight, n, n_out


def grouped_gemm_reference(
    a: Any, w: Any, plan: RoutePlan, *, gather: bool = True, activation: str | None = None, out: Any = None
) -> Any:
    """:func:`grouped_gemm` in plain torch, accumulating in float32. Synchronises (it loops
    over experts on the host); for tests and the CPU path."""
    import torch

    weight, n, n_out = _validate(a, w, plan, gather, activation, out)
    if isinstance(weight, TiledWeight):
        weight = weight.unpack()
    if activation == "silu_and_mul":
        weight = cfgmod.deinterleave_gate_up(weight)
    if out is None:
        out = torch.empty(plan.num_rows, n_out, dtype=a.dtype, device=a.device)
    starts = plan.expert_starts.tolist()
    for e in range(plan.num_experts):
        lo, hi = starts[e], starts[e + 1]
        if hi == lo:
            continue
        x = a[plan.gather_idx[lo:hi].long()] if gather else a[lo:hi]
        y = x.float() @ weight[e].float().T
        if activation == "silu_and_mul":
            y = _silu_and_mul(y)
        out[lo:hi] = y.to(out.dtype)
    return out


@functools.lru_cache(maxsize=64)
def _capability(device_index: int) -> tuple[int, int]:
    import torch

    return tuple(torch.cuda.get_device_capability(device_index))  # type: ignore[return-value]


def _kernel_path_problem(a: Any) -> str | None:
    """Why the kernel cannot run for this tensor (None if it can)."""
    import torch

    if a.device.type != "cuda":
        return f"tensors on {a.device}"
    if a.dtype == torch.float32:
        return "float32 tensors (the kernels take bf16 or fp16)"
    cap = _capability(a.device.index if a.device.index is not None else torch.cuda.current_device())
    if cap != (9, 0):
        return f"a GPU of compute capability {cap[0]}.{cap[1]} (the kernels are built for Hopper, sm_90a)"
    return None


def _weight_descriptor(weight: Any, cfg: GemmConfig) -> sb.ByValue:
    key = (weight.data_ptr(), tuple(weight.shape), weight.dtype, cfg.block_n // cfg.cluster, cfg.dtype, cfg.tiled_w)
    desc = _descriptor_cache.get(key)
    if desc is None:
        desc = sb.ByValue(cfgmod.weight_tma_descriptor(weight, cfg), align=64)
        if len(_descriptor_cache) > 256:
            _descriptor_cache.clear()
        _descriptor_cache[key] = desc
    return desc


def _token_descriptor(a: Any, config: GemmConfig) -> sb.ByValue:
    """The token map of ``a``, cached by what it encodes (address, shape, strides, box), so
    the decode loop, whose activations reuse a few allocator blocks, does not re-encode it."""
    # The box: its rows depend on more than block_m (128-row ping-pong tiles load 64-row slices).
    key = (a.data_ptr(), tuple(a.shape), a.stride(0), a.dtype, config.gather, config.gather_mode,
           cfgmod._token_box_rows(config))
    desc = _token_cache.get(key)
    if desc is None:
        desc = sb.ByValue(cfgmod.token_tma_descriptor(a, config), align=64)
        if len(_token_cache) > 256:
            _token_cache.clear()
        _token_cache[key] = desc
    return desc


def _kernel_for(config: GemmConfig, device_index: int, *, mlp: bool = False) -> tuple[Any, int]:
    """(loaded kernel, number of SMs) of a configuration on a device, cached: the grouped GEMM's,
    or with ``mlp`` the one-launch expert MLP's for that tile."""
    key = (config, device_index, mlp)
    hit = _kernels.get(key)
    if hit is None:
        if mlp:
            compiled = sb.compile_source(cfgmod.mlp_kernel_source(config), cfgmod.mlp_kernel_name(config))
        else:
            compiled = sb.compile_source(cfgmod.kernel_source(config), config.kernel_name)
        hit = (sb.load(compiled, device_index), sb.device_properties(device_index).num_sms)
        _kernels[key] = hit
    return hit


def _counters(use: str, count: int, device: Any) -> Any:
    """At least ``count`` int32 counters for a launch on torch's current stream that leaves
    them as it found them (``use``: ``"splitk"``, or ``"barrier"`` for the staged gather's grid
    barrier and the dynamic tile counter; never shared between uses).

    They must be zero at the first launch. They are cached per (use, device, stream): launches
    on one stream run one after the other, so they can share a buffer. While a CUDA graph is
    being captured on a stream that has no cached buffer yet (or too small a one), a fresh
    ``torch.zeros`` is used instead (its memset is captured and replayed with the graph); a
    graph that took a stream's cached buffer must not be replayed concurrently with other
    launches of the same use on that stream.
    """
    import torch

    stream = torch.cuda.current_stream(device)
    key = (use, device.index if device.index is not None else torch.cuda.current_device(), stream.cuda_stream)
    counters = _stream_counters.get(key)
    if counters is None or counters.numel() < count:
        if torch.cuda.is_current_stream_capturing():
            return torch.zeros(count, dtype=torch.int32, device=device)
        if counters is not None:
            _retired_counters.append(counters)
        counters = torch.zeros(max(count, 4096 if use == "splitk" else 4), dtype=torch.int32, device=device)
        _stream_counters[key] = counters
    return counters


def _tile_classes(config: Any, plan: RoutePlan, n: int, k: int, dtype: str, activation: str | None,
                  gather: bool, tiled: bool = False) -> tuple[TileClass, ...]:
    """The call's tile classes: the heuristic's (for the weight's layout), one for a GemmConfig, or
    the given ones, checked."""
    if config is None:
        classes = cfgmod.choose_tile_classes(plan.num_rows, plan.num_experts, n, k, dtype, activation, gather,
                                             num_tokens=plan.num_tokens, tiled_w=tiled)
    elif isinstance(config, GemmConfig):
        classes = cfgmod.check_tile_classes((TileClass(config),), dtype=dtype, activation=activation, gather=gather)
    else:
        classes = cfgmod.check_tile_classes(config, dtype=dtype, activation=activation, gather=gather)
    k_steps = -(-k // cfgmod._BLOCK_K)
    for c in classes:
        if c.config.split_k > k_steps:
            raise sb.InvalidArgumentError(
                f"`config.split_k` must be at most ceil(k / 64)={k_steps} for k={k} (got {c.config.split_k})"
            )
    return classes


def _launch(config: GemmConfig, device_index: int, a: Any, lda: int, weight: Any, out: Any, plan: RoutePlan,
            n: int, k: int, gather: bool, tile_offsets: Any, staged: Any, programmatic: bool,
            stage_by_token: bool = False, split: tuple[Any, Any, float, int, int] | None = None) -> None:
    """One launch of the kernel of ``config`` over the tiles of ``tile_offsets``. ``split``:
    (hot class's tile total, cold class's, :func:`~staticbatch_moe._gemm_config.split_cost`, SMs,
    role 1 for the hot launch or 2 for the cold one) of concurrent classes; a hot launch given
    ``stage_by_token`` stages every row (the cold launch's too)."""
    import torch

    kernel, sms = _kernel_for(config, device_index)
    # At least ONE_BLOCK_SMEM: one block per SM even while a programmatic dependent's blocks
    # are placed as the previous kernel's blocks exit (two 112 KB blocks could share an SM).
    smem = max(cfgmod.shared_bytes(config), ONE_BLOCK_SMEM)
    grid = sms
    if config.cluster > 1:  # whole clusters, all resident at once (the staged gather's grid barrier)
        grid = config.cluster * min(sms // config.cluster,
                                    kernel.max_active_clusters(config.cluster, cfgmod.threads(config), smem))
    workspace = counters = by_token = None
    token_rows = a
    staged_gather = config.gather and config.gather_mode == "staged"
    if config.split_k > 1:
        floats = cfgmod.splitk_workspace_floats(plan.num_rows, plan.num_experts, n, config)
        # Fully written before it is read; a fresh one per call, so launches never share one.
        workspace = torch.empty(floats, dtype=torch.float32, device=a.device)
        counters = _counters("splitk", cfgmod.splitk_counter_count(plan.num_rows, plan.num_experts, n, config), a.device)
    elif staged_gather:
        # The kernel's first phase fills it with the gathered rows; its TMA map is the token map.
        workspace = token_rows = staged
        counters = _counters("barrier", 2, a.device)
        hot_stages_all = split is not None and split[4] == 1 and stage_by_token
        if hot_stages_all or (stage_by_token and
                              _stage_units_by_token(plan.num_tokens, k) >= grid * cfgmod.threads(config) // 32):
            # The launch covers every task and has a token group for every warp: copy token by
            # token (stage_rows_by_token).
            by_token = plan.slot_to_row
    if config.dynamic or split is not None:
        # [0, 2): the staged gather's grid barrier, [2, 4): the tile counter (a cold launch of
        # concurrent classes takes dynamic tiles; its hot launch, beside it on the stream, uses
        # [0, 2) only).
        counters = _counters("barrier", 4, a.device)
    kernel.launch(
        grid,
        cfgmod.threads(config),
        smem,
        [
            _weight_descriptor(weight, config),
            # Holds a's address and row count (a graph capture keeps the bytes it was given).
            _token_descriptor(token_rows, config),
            a,
            np.int64(lda),
            out,
            plan.gather_idx if gather else None,
            tile_offsets,
            plan.task_rows,
            plan.task_starts,
            plan.task_expert,
            np.int32(plan.num_experts),
            np.int32(n),
            np.int32(k),
            workspace,
            counters,
            by_token,
            np.int32(plan.num_tokens),
            np.int32(plan.top_k),
            None if split is None else split[0],
            None if split is None else split[1],
            np.float32(0.0 if split is None else split[2]),
            np.int32(0 if split is None else split[3]),
            np.int32(0 if split is None else split[4]),
        ],
        programmatic=programmatic,
        # A cold launch of concurrent classes has no grid barrier and starts beside the hot one.
        cooperative=staged_gather and USE_COOPERATIVE_LAUNCH and (split is None or split[4] == 1),
    )


def grouped_gemm(
    a: Any,
    w: Any,
    plan: RoutePlan,
    *,
    gather: bool = True,
    activation: str | None = None,
    out: Any = None,
    config: GemmConfig | Sequence[TileClass] | None = None,
    programmatic_launch: bool = False,
) -> Any:
    """Every expert's GEMM in one statically batched kernel (one per tile class).

    For each expert e and each grouped row r of e (``plan.expert_starts[e] <= r <
    plan.expert_starts[e + 1]``): ``out[r] = act(x_r @ w[e].T)`` with ``x_r = a[plan.gather_idx[r]]``
    (``gather=True``) or ``a[r]`` (``gather=False``), float32 accumulation.

    Parameters
    ----------
    a : torch.Tensor
        bf16 or fp16, ``[T, K]`` (gather) or ``[T * k, K]`` (grouped rows, e.g. the output of
        the previous GEMM), rows contiguous (any row stride that is a multiple of 8). float32
        runs the reference path.
    w : torch.Tensor, TiledWeight or GateUpWeight
        ``[E, N, K]``, same dtype, contiguous (stacked ``nn.Linear`` weights, vLLM's w1/w2), or
        the same as a :class:`TiledWeight` (:func:`pack_weight`, once at load time; faster at
        decode). With ``activation="silu_and_mul"``: a :class:`GateUpWeight` from
        :func:`pack_gate_up` (``tiled=True`` for the tiled layout). The configurations'
        ``tiled_w`` follows the weight.
    plan : RoutePlan
        From :func:`staticbatch_moe.route_plan`.
    gather : bool
        Gather input rows by ``plan.gather_idx`` inside the kernel.
    activation : None or "silu_and_mul"
        ``"silu_and_mul"``: ``out = silu(gate) * up``, ``N / 2`` columns.
    out : torch.Tensor, optional
        ``[T * k, N_out]``, contiguous, same dtype. Rows ``[M, T * k)`` (skipped ids) are left
        as they are.
    config : GemmConfig or sequence of TileClass, optional
        Override the heuristic (:func:`~staticbatch_moe._gemm_config.choose_tile_classes`,
        for experiments): one configuration for every expert, or tile classes, each a
        configuration for the experts whose row count falls in its range (the ranges must
        cover every count once). A call runs one launch per class, in the given order, each
        over its own experts' tiles only (the class is chosen on the device, no sync).
    programmatic_launch : bool
        Launch as a programmatic dependent of the kernel before it on the stream (PDL, Hopper):
        this kernel's blocks may start while that kernel finishes, and without gather they load
        their first weight stages before waiting for it; no token row is read and no output
        written before it has completed. Only if that kernel writes neither ``w`` nor the
        plan's arrays (the MoE layer uses it for the down GEMM, which follows the gate/up GEMM).
        Taken only when the plan's tile prefix sums for this call are built already (else the
        kernel before would be the one building them), and with the heuristic's tiles
        (``config=None``) only where it measured faster
        (:func:`~staticbatch_moe._gemm_config.programmatic_pays`: swap-mode and 2-CTA-cluster
        tiles, not 64-row ping-pong ones). The launches of a call after its first (one per
        tile class) are programmatic dependents of the one before, with the heuristic's tiles
        by the same rule. Ignored on the reference path.

    Returns
    -------
    torch.Tensor
        ``[T * k, N_out]``, grouped by expert.

    Notes
    -----
    Requirements: K a multiple of 8; N a multiple of 8 (16 with ``silu_and_mul``); 16-byte
    aligned base pointers. Deterministic: the same inputs give bit-identical outputs (also
    with split-K, whose partial sums are added in a fixed order). No host synchronisation, so
    it can be captured in a CUDA graph. A split-K configuration uses a per-call float32
    workspace and a zeroed counter buffer cached per stream (see ``_counters``); the staged
    gather (``gather_mode="staged"``, chosen for compute-bound gathered problems) a per-call
    ``[rows, K]`` workspace for the gathered rows (shared by the call's classes) and a cached
    two-word barrier.
    """
    import torch

    weight, n, n_out = _validate(a, w, plan, gather, activation, out)
    tiled = isinstance(weight, TiledWeight)
    stored = weight.tiles if tiled else weight  # what the kernel reads
    k = weight.shape[2]
    lda = a.stride(0) if a.shape[0] > 1 else k
    classes: tuple[TileClass, ...] = ()
    if a.dtype != torch.float32:  # the kernels' alignment and the override, checked on every device so code ports
        cfgmod.check_problem(n, k, lda, activation)
        classes = cfgmod.with_layout(
            _tile_classes(config, plan, n, k, _dtype_tag(a.dtype), activation, gather, tiled), tiled)
    problem = _kernel_path_problem(a)
    if problem is not None:
        if problem not in _warned_fallback:
            _warned_fallback.add(problem)
            logger.info("staticbatch_moe.grouped_gemm: running the torch reference path for %s", problem)
        return grouped_gemm_reference(a, w, plan, gather=gather, activation=activation, out=out)
    if out is None:
        out = torch.empty(plan.num_rows, n_out, dtype=a.dtype, device=a.device)
    if plan.num_rows == 0:
        return out
    device_index = a.device.index if a.device.index is not None else torch.cuda.current_device()
    # Every tile prefix sum before the first launch: a programmatic launch reads them before it
    # waits for the kernel before it, which must therefore not be the kernel that builds them.
    ranges = [(c.min_rows, c.max_rows) for c in classes]
    built = all(plan.has_tile_offsets(c.config.block_m, c.config.block_n, n, c.config.split_k, r)
                for c, r in zip(classes, ranges))
    offsets = [plan.tile_offsets(c.config.block_m, c.config.block_n, n, c.config.split_k, r)
               for c, r in zip(classes, ranges)]
    staged = None
    if any(c.config.gather and c.config.gather_mode == "staged" for c in classes):
        # The first phase of each staged launch fills its own experts' rows of it.
        staged = torch.empty(plan.num_rows, k, dtype=a.dtype, device=a.device)
    # With the heuristic's tiles, a programmatic launch only where it measured faster.
    def pays(cfg: GemmConfig) -> bool:
        return config is not None or not cfgmod.USE_PROGRAMMATIC_RULE or cfgmod.programmatic_pays(cfg)

    # One class takes every task (check_tile_classes): its staged copy may go token by token.
    by_token = STAGE_BY_TOKEN and len(classes) == 1
    split = None
    if config is None:
        # Fitted tiles take dynamic tiles; concurrent classes: the hot launch stages the rows of
        # both (token by token) and takes its share of the SMs, the cold one, always its
        # programmatic dependent, starts on the rest and takes the tiles (from a counter) that are
        # left when the hot launch's SMs come free.
        classes, concurrent = cfgmod.launch_classes(classes)
        if concurrent:
            cost = cfgmod.split_cost(classes[0].config, classes[1].config)
            split = (offsets[0][-1:], offsets[1][-1:], cost, sb.device_properties(device_index).num_sms)
            by_token = classes[1].config.gather and classes[1].config.gather_mode == "staged"
    for i, (c, tile_offsets) in enumerate(zip(classes, offsets)):
        # The launches after the first may be programmatic dependents of the one before (their
        # experts, output rows and staged rows are disjoint from it), by the same rule.
        asked = (programmatic_launch and built) if i == 0 else True
        _launch(c.config, device_index, a, lda, stored, out, plan, n, k, gather, tile_offsets, staged,
                programmatic=(asked and pays(c.config)) or (split is not None and i == 1),
                stage_by_token=by_token, split=None if split is None else (*split, i + 1))
    return out


def _check_mlp_weights(x: Any, w1: Any, w2: Any, plan: RoutePlan) -> tuple[Any, int, int]:
    """Checks of :func:`grouped_mlp` beyond GEMM 1's (``_validate``); returns (w1 tensor, H, I)."""
    import torch

    weight1, two_i, _ = _validate(x, w1, plan, True, "silu_and_mul", None)
    e, _, h = weight1.shape
    tiled = isinstance(w2, TiledWeight)
    if not tiled and (not isinstance(w2, torch.Tensor) or w2.dim() != 3):
        raise sb.InvalidArgumentError(
            f"`w2` must be a [E, H, I] tensor or a TiledWeight (got {getattr(w2, 'shape', type(w2).__name__)})"
        )
    if tuple(w2.shape) != (e, h, two_i // 2):
        raise sb.InvalidArgumentError(f"`w2` must have shape [{e}, {h}, {two_i // 2}] to match `w1` (got {list(w2.shape)})")
    contiguous = (w2.tiles if tiled else w2).is_contiguous()
    if w2.dtype != x.dtype or w2.device != x.device or not contiguous:
        raise sb.InvalidArgumentError(
            f"`w2` must be a contiguous {x.dtype} weight on {x.device} (got {w2.dtype} on {w2.device}, "
            f"contiguous={contiguous})"
        )
    return weight1, h, two_i // 2


def grouped_mlp_reference(x: Any, w1: Any, w2: Any, plan: RoutePlan, *, out: Any = None) -> Any:
    """:func:`grouped_mlp` in plain torch: the two :func:`grouped_gemm_reference` calls
    (float32 accumulation, ``mid`` rounded to the input dtype in between, as the kernel does)."""
    _check_mlp_weights(x, w1, w2, plan)
    mid = grouped_gemm_reference(x, w1, plan, activation="silu_and_mul")
    return grouped_gemm_reference(mid, w2, plan, gather=False, out=out)


def grouped_mlp(x: Any, w1: Any, w2: Any, plan: RoutePlan, *, out: Any = None,
                config: GemmConfig | None | bool = None) -> Any:
    """Both expert GEMMs of an MoE layer: ``out[r] = silu_and_mul(x[gather_idx[r]] @ w1[e].T) @ w2[e].T``
    for every grouped row r of every expert e, in one launch at decode.

    Parameters
    ----------
    x : torch.Tensor
        ``[T, H]`` bf16 or fp16, rows contiguous (float32 runs the reference path).
    w1 : GateUpWeight
        ``[E, 2I, H]`` from :func:`pack_gate_up`.
    w2 : torch.Tensor
        ``[E, H, I]``, contiguous, the dtype of ``x``.
    plan : RoutePlan
        From :func:`~staticbatch_moe.route_plan`.
    out : torch.Tensor, optional
        ``[T * k, H]``, contiguous: the grouped rows, as :func:`grouped_gemm` returns them.
    config : GemmConfig, None or False
        ``None``: the heuristic (:func:`~staticbatch_moe._gemm_config.choose_mlp_config`) picks a
        swap-mode tile for the one-launch kernel where the layer is weight streaming (few rows per
        expert) and ``USE_GROUPED_MLP`` is set (off by default: measured slower than two launches,
        see performance.md), else runs the two GEMMs as two :func:`grouped_gemm` calls (the second
        a programmatic dependent of the first). A GemmConfig forces the one-launch kernel with
        that tile (swap mode, no split-K); ``False`` forces the two calls.

    Returns
    -------
    torch.Tensor
        ``[T * k, H]``, grouped by expert (combine it with :func:`~staticbatch_moe.combine`).

    Notes
    -----
    The one-launch kernel (``cuda_src/staticbatch/moe/grouped_mlp.cuh``) runs GEMM 1's tiles,
    then GEMM 2's, over one persistent grid; a GEMM 2 tile streams its weights at once and waits
    only for the ``mid`` rows of its expert (flags, no grid barrier). Its output is bit-identical
    to the two calls with the same tiles. It keeps a ``[T * k, I]`` intermediate per call and a
    zeroed counter buffer per stream (like split-K); every block must be resident at once (one
    per SM), as for the staged gather. No host synchronisation: CUDA graphs capture it.
    """
    import torch

    weight1, h, inter = _check_mlp_weights(x, w1, w2, plan)
    if out is not None:
        if (not isinstance(out, torch.Tensor) or out.dtype != x.dtype or out.device != x.device
                or tuple(out.shape) != (plan.num_rows, h) or not out.is_contiguous()):
            raise sb.InvalidArgumentError(
                f"`out` must be a contiguous {x.dtype} tensor of shape [{plan.num_rows}, {h}] on {x.device} "
                f"(got {getattr(out, 'dtype', None)} {list(getattr(out, 'shape', []))})"
            )
    cfg: GemmConfig | None = None
    lda = x.stride(0) if x.shape[0] > 1 else h
    if x.dtype != torch.float32:
        cfgmod.check_problem(2 * inter, h, lda, "silu_and_mul")
        cfgmod.check_problem(h, inter, inter, None)
        dtype = _dtype_tag(x.dtype)
        if config is None:
            cfg = cfgmod.choose_mlp_config(plan.num_rows, plan.num_experts, h, inter, dtype,
                                           num_tokens=plan.num_tokens)
        elif isinstance(config, GemmConfig):
            cfg = cfgmod.check_mlp_config(config)
            if cfg.dtype != dtype:
                raise sb.InvalidArgumentError(f"`config.dtype` must be {dtype!r} to match `x` (got {cfg.dtype!r})")
        elif config is not False:
            raise sb.InvalidArgumentError(f"`config` must be a GemmConfig, None or False (got {config!r})")
    if cfg is not None and (isinstance(weight1, TiledWeight) or isinstance(w2, TiledWeight)):
        if isinstance(config, GemmConfig):
            raise sb.InvalidArgumentError(
                "`config`: the one-launch kernel reads weights [E, N, K]; pass untiled weights or config=False"
            )
        cfg = None  # the heuristic's one launch takes untiled weights: two launches instead
    if _kernel_path_problem(x) is not None:
        return grouped_mlp_reference(x, w1, w2, plan, out=out)
    if cfg is None:
        mid = grouped_gemm(x, w1, plan, activation="silu_and_mul")
        return grouped_gemm(mid, w2, plan, gather=False, out=out, programmatic_launch=True)
    if out is None:
        out = torch.empty(plan.num_rows, h, dtype=x.dtype, device=x.device)
    if plan.num_rows == 0:
        return out
    mid = torch.empty(plan.num_rows, inter, dtype=x.dtype, device=x.device)
    device_index = x.device.index if x.device.index is not None else torch.cuda.current_device()
    kernel, sms = _kernel_for(cfg, device_index, mlp=True)
    offsets1 = plan.tile_offsets(cfg.block_m, cfg.block_n, 2 * inter)
    offsets2 = plan.tile_offsets(cfg.block_m, cfg.block_n, h)
    counters = _counters("mlp", cfgmod.mlp_flag_count(plan.num_rows, plan.num_experts, cfg.block_m), x.device)
    kernel.launch(
        sms,  # at most one block per SM: all resident (GEMM 2's tiles wait for GEMM 1's)
        cfgmod.threads(cfg),
        max(cfgmod.shared_bytes(cfg), ONE_BLOCK_SMEM),
        [
            _weight_descriptor(weight1, cfg),
            _weight_descriptor(w2, cfg),
            x,
            np.int64(lda),
            mid,
            out,
            plan.gather_idx,
            offsets1,
            offsets2,
            plan.task_rows,
            plan.task_starts,
            plan.task_expert,
            np.int32(plan.num_experts),
            np.int32(h),
            np.int32(inter),
            counters,
        ],
        cooperative=USE_COOPERATIVE_LAUNCH,
    )
    return out
