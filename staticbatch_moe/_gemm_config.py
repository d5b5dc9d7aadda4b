"""Configurations of the Hopper MoE grouped GEMM kernel and what the host needs to run one.

The kernel is ``staticbatch::moe::grouped_gemm`` in ``cuda_src/staticbatch/moe/grouped_gemm.cuh``.
A :class:`GemmConfig` names one instantiation; :func:`kernel_source` writes the small
translation unit with its ``extern "C"`` entry point, :func:`shared_bytes` and :func:`threads`
give the launch shape, :func:`choose_config` picks a configuration from the problem's shape,
:func:`candidate_configs` lists a few alternatives for a shape (for sweeps), and
:func:`weight_tma_descriptor` / :func:`token_tma_descriptor` build the two 128-byte TMA
descriptors the kernel takes by value.

Entry point of every generated translation unit (argument order and C types)::

    extern "C" __global__ void <cfg.kernel_name>(
        const __grid_constant__ staticbatch::ptx::TmaDescriptor w_map,  // 128 bytes by value
        const __grid_constant__ staticbatch::ptx::TmaDescriptor a_map,  // 128 bytes by value
        const void* a,                 // [T, K] row-major, bf16/fp16
        long long lda,                 // row stride of a in elements
        void* out,                     // [M_total, N_out] contiguous, N_out = N or N / 2
        const int* gather_idx,         // [M_total] input row of each output row, or nullptr
        const int* tile_offsets,       // [num_tasks + 1] exclusive prefix sum of tiles per task
        const int* task_rows,          // [num_tasks] rows (m) of each task
        const long long* task_starts,  // [num_tasks + 1] first output row of each task
        const int* task_expert,        // [num_tasks] expert id of each task
        int num_tasks,
        int n,                         // rows of the weight per expert (2I with silu_and_mul)
        int k,                         // reduction size (K)
        void* workspace,               // split_k > 1: fp32 partials (splitk_workspace_floats);
                                       // gather_mode="staged": the grouped rows [M_total, K]; else nullptr
        unsigned* counters);           // split_k > 1: zeroed counters (splitk_counter_count);
                                       // "staged": 2 words, the first zero (grid barrier); else nullptr

``w_map`` is :func:`weight_tma_descriptor` ``(w, cfg)``. ``a_map`` is
:func:`token_tma_descriptor` ``(a, cfg)``, a 2-D map over ``a`` [rows, K] with row stride
``lda`` (it holds ``a``'s address and row count, so rebuild it when ``a`` changes): without
``gather`` the kernel loads ``block_m`` token rows per TMA through it (box ``{64,
block_m}``; 64 rows per box for ``block_m=256`` and 128-row ping-pong tiles, 32 (or 16) for fitted
swap tiles: :func:`_token_box_rows`); with ``gather`` and ``gather_mode="tma"`` it loads each gathered row with its
own TMA (box ``{64, 1}``, rows = T, the token count); with ``gather_mode="cp_async"`` (the
default) it is never read and ``token_tma_descriptor`` returns 128 zero bytes; with
``gather_mode="staged"`` it is the map without gather over the workspace the kernel first
fills with the gathered rows (``a`` is then the [T, K] source). Both are
64-byte aligned by-value parameters (``__grid_constant__``), packed exactly like ``w_map``.
(Before the TMA token path the entry point had no ``a_map``; before split-K it ended at ``k``;
the last two parameters were ``splitk_workspace`` and ``splitk_counters`` before the staged
gather shared them.)

Staged gather (``gather_mode="staged"``, normal mode or fitted swap tiles, no split-K): the kernel first copies
the grouped rows ``workspace[r] = a[gather_idx[r]]`` (all blocks), meets at a grid barrier
on ``counters`` (word 0 must be zero at launch and is zero again after it; word 1 is a
generation number), then runs without gather, its ``a_map`` over the workspace
(``[plan rows, K]``, same dtype, contiguous). All blocks must be resident at once: launch at
most one block per SM (the default grid).

Tiles: task ``t`` has ``ceil(m_t / block_m) * ceil(n / block_n) * split_k`` tiles (fitted swap
tiles too: only the rows within each m-block differ; see
:func:`tiles_per_task`; ``RoutePlan.tile_offsets(block_m, block_n, n, split_k)`` builds the
prefix sums). Launch ``threads(cfg)`` threads per block, ``shared_bytes(cfg)`` bytes
of dynamic shared memory, and a grid of ``min(total tiles, number of SMs)`` blocks (any grid
size is correct: blocks stride over the tiles).

Alignment: ``k % 8 == 0``, ``lda % 8 == 0``, ``n % 8 == 0`` (``n % 16 == 0`` with
``silu_and_mul``), all base pointers 16-byte aligned, fewer than 2**31 rows in ``a`` and in
``out``. K and N need not be multiples of the tile sizes.

Split-K (``split_k > 1``, swap mode; the decode regime where a layer has fewer weight tiles
than about two waves of SMs): each tile's K steps are shared among ``split_k`` blocks that
write fp32 partials to ``splitk_workspace`` (:func:`splitk_workspace_floats` floats); the
last of them to arrive (an atomic counter per output tile and consumer warp group, of
:func:`splitk_counter_count`) sums the partials in slice order (deterministic, no float
atomics), applies the activation and stores the output, and resets its counter. The counters
must be zero at launch and are zero again after the launch. ``split_k`` must not exceed
``ceil(k / 64)``.

Weight layout for ``activation="silu_and_mul"``: gate and up rows interleaved in groups of
8, ``[gate 0:8, up 0:8, gate 8:16, up 8:16, ...]``, built once at load time by
:func:`interleave_gate_up` from vLLM's ``[gate; up]`` layout of ``w1``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

import staticbatch as sb
from staticbatch import InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch

__all__ = [
    "GATE_UP_GROUP",
    "GemmConfig",
    "TileClass",
    "check_problem",
    "check_mlp_config",
    "check_tile_classes",
    "choose_config",
    "choose_mlp_config",
    "choose_tile_classes",
    "deinterleave_gate_up",
    "interleave_gate_up",
    "kernel_source",
    "mlp_flag_count",
    "mlp_kernel_name",
    "mlp_kernel_source",
    "shared_bytes",
    "candidate_configs",
    "splitk_counter_count",
    "splitk_workspace_floats",
    "threads",
    "tiles_per_task",
    "token_tma_descriptor",
    "weight_tma_descriptor",
]

#: Rows per gate (and per up) group in the interleaved ``silu_and_mul`` weight layout.
GATE_UP_GROUP = 8
#: Rows and columns of one block of a tiled weight (:func:`tile_weight`).
TILE = 64

#: Shared memory one block may use on sm_90 after raising the dynamic limit (227 KiB).
MAX_SHARED_BYTES = 232448

#: Streaming multiprocessors of an H100/H200 SXM, used only by :func:`choose_config`.
DEFAULT_NUM_SMS = 132

#: Largest split-K factor a configuration may have.
MAX_SPLIT_K = 16

_BLOCK_K = 64
_ACTIVATIONS = (None, "silu_and_mul")
_DTYPES = ("bf16", "fp16")
_GATHER_MODES = ("cp_async", "tma", "staged")  # the first is the default


@dataclass(frozen=True)
class GemmConfig:
    """One instantiation of the grouped GEMM kernel.

    Parameters
    ----------
    block_m : int
        Token rows per tile. Normal mode: 64, 128 or 192 (one wgmma warp group per 64 rows; in
        a 128- or 192-row tile a group whose rows all lie past the expert's end skips its work;
        192 rows: ``block_n`` at most 192, not ping-pong, no store warps or dynamic tiles, no
        in-loop gather), or 256 ("tall tiles": two warp groups of 128 rows, each as two 64-row slices, a slice
        without rows of the task skipped at run time; ``block_n`` 64, 96, 128 or 192, not
        ping-pong). Swap mode: 8, 16, 32, 48 or 64 (wgmma's N side), or one of
        :data:`FITTED_SIZES` (128, 144, 160, 176, 192, 256) for a *fitted* tile
        (:func:`is_fitted`: an expert's rows split evenly over its m-blocks, each tile's wgmma N
        its own row count rounded up to 16; no split-K).
    block_n : int
        Weight rows per tile (output columns before the activation). Normal mode: a multiple
        of 16 up to 256 that wgmma supports (64, 96, 128, 192, 256). Swap mode: 64 or 128 (one
        warp group per 64 weight rows).
    block_k : int
        K per pipeline stage; only 64 (one 128-byte swizzled row).
    stages : int
        Depth of the shared-memory ring (2 or more, as far as shared memory allows).
    swap_ab : bool
        Put the weight on wgmma's M side and the tokens on its N side (small m per expert).
    activation : str or None
        ``None`` or ``"silu_and_mul"`` (the weight must be interleaved, see
        :func:`interleave_gate_up`).
    dtype : str
        ``"bf16"`` or ``"fp16"``: the type of ``a``, ``w`` and ``out``.
    gather : bool
        Read input rows through ``gather_idx``.
    gather_mode : str
        How gathered rows reach shared memory (only with ``gather``; leave the default
        otherwise): ``"cp_async"`` (default) 16-byte ``cp.async`` from all 128 producer
        threads, swizzled by hand; ``"tma"`` one TMA load of 128 bytes per token row and K
        step, one row per producer thread (up to the 4 producer warps). Measured on the H200
        (2026-11-28) the TMA gather was slower at every shape tried (up to 2x at 128 rows per
        expert), so it is kept only for experiments. ``"staged"`` (normal mode or fitted swap
        tiles, no split-K):
        the kernel's first phase copies all gathered rows to a workspace, the grid meets at
        a barrier, and the GEMM then reads them by TMA like ``gather=False``; the
        heuristic's choice in normal mode, where it measured 4-26 % faster than cp.async.
    pingpong : bool
        Normal mode with ``block_m`` 64, or 128 with ``block_n`` at most 192, only: two
        consumer warp groups that each own whole ``block_m`` x ``block_n`` tiles and take the
        block's tiles in turn, so that one group's epilogue runs under the other's main loop
        (helps when K is short). A 128-row tile is two 64-row slices of one group, a slice
        without rows of the task skipped at run time (as in tall tiles): each weight stage
        feeds 128 rows instead of 64, at the waste of a 64-row tile.
    split_k : int
        K-slices per tile, 1 (off) to 16; above 1 only in swap mode. Each slice's block
        writes fp32 partials; the last to finish sums them in a fixed order and stores the
        output (see the module docstring). Must not exceed ``ceil(k / 64)`` of the problem.
    cluster : int
        1, or 2 for 2-CTA thread block clusters (normal mode, ``block_m`` 64, 128 or 192, no split-K,
        gather staged or none): the two blocks of a cluster run neighbouring tile ids side by
        side and, when the two tiles share a weight tile (same expert and n-block), each
        loads half of it into both with a TMA multicast, halving the weight's L2 traffic.
        Launched with at most as many clusters as fit on the device at once.
    store_warps : bool
        Normal mode with ``block_m == 128`` (two cooperative consumer warp groups, not
        ping-pong, gather staged or none) only: each consumer stages its whole output tile in
        shared memory and goes on to its next tile's main loop, while the producer warp group's
        three otherwise idle warps copy the staged tile to global memory. Needs a staging buffer
        per 64 output columns of a tile (so fewer ring stages for wide tiles without activation).
    dynamic : bool
        Normal mode with ``block_m == 128`` (cooperative, not ping-pong, no split-K, gather
        staged or none) only: the blocks take their tiles from a global counter as they need
        them (each 2-CTA cluster a pair of neighbouring tiles) instead of every ``grid``-th tile
        in turn. Tiles that share a weight or a token block then start together however far the
        blocks have drifted apart, so the L2 serves the second reader.
    """

    block_m: int = 128
    block_n: int = 256
    block_k: int = 64
    stages: int = 4
    swap_ab: bool = False
    activation: str | None = None
    dtype: str = "bf16"
    gather: bool = False
    pingpong: bool = False
    gather_mode: str = "cp_async"
    split_k: int = 1
    cluster: int = 1
    store_warps: bool = False
    dynamic: bool = False
    tiled_w: bool = False

    def __post_init__(self) -> None:
        if self.block_k != _BLOCK_K:
            raise InvalidArgumentError(f"`block_k` must be 64 (got {self.block_k})")
        if self.dtype not in _DTYPES:
            raise InvalidArgumentError(f"`dtype` must be one of {_DTYPES} (got {self.dtype!r})")
        if self.activation not in _ACTIVATIONS:
            raise InvalidArgumentError(f"`activation` must be one of {_ACTIVATIONS} (got {self.activation!r})")
        if self.gather_mode not in _GATHER_MODES:
            raise InvalidArgumentError(f"`gather_mode` must be one of {_GATHER_MODES} (got {self.gather_mode!r})")
        if self.gather_mode == "staged" and ((self.swap_ab and self.block_m <= 64) or self.split_k > 1):
            raise InvalidArgumentError(
                f"`gather_mode='staged'` needs normal mode or fitted swap tiles (block_m 128-256), without "
                f"split-K (got swap_ab={self.swap_ab}, block_m={self.block_m}, split_k={self.split_k})"
            )
        if not self.gather and self.gather_mode != _GATHER_MODES[0]:
            raise InvalidArgumentError(
                f"`gather_mode` applies only with gather=True; leave it at {_GATHER_MODES[0]!r} "
                f"(got {self.gather_mode!r})"
            )
        if self.swap_ab:
            if self.block_m not in (8, 16, 32, 48, 64) + FITTED_SIZES:
                raise InvalidArgumentError(
                    f"`block_m` must be 8, 16, 32, 48, 64 or a fitted size {FITTED_SIZES} in swap mode "
                    f"(got {self.block_m})"
                )
            if self.block_n not in (64, 128):
                raise InvalidArgumentError(f"`block_n` must be 64 or 128 in swap mode (got {self.block_n})")
        else:
            if self.block_m not in (64, 128, 192, 256):
                raise InvalidArgumentError(f"`block_m` must be 64, 128, 192 or 256 (got {self.block_m})")
            if self.block_n not in (64, 96, 128, 192, 256):
                raise InvalidArgumentError(f"`block_n` must be 64, 96, 128, 192 or 256 (got {self.block_n})")
            if self.block_m == 256 and self.block_n == 256:
                # Two 64-row slices of 128 accumulators each would not fit a consumer's 232 registers.
                raise InvalidArgumentError(f"`block_n` must be 64, 96, 128 or 192 with block_m=256 (got {self.block_n})")
            if self.block_m == 192 and (self.block_n == 256 or self.pingpong
                                        or (self.gather and self.gather_mode != "staged")):
                # Three consumer groups share 65536 registers with the producer: 152 each.
                raise InvalidArgumentError(
                    "`block_m=192` needs block_n <= 192, no ping-pong, and gather_mode='staged' if gathering (got "
                    f"block_n={self.block_n}, pingpong={self.pingpong}, gather={self.gather}, "
                    f"gather_mode={self.gather_mode!r})"
                )
        if self.pingpong and (self.swap_ab or self.block_m not in (64, 128) or (self.block_m == 128 and self.block_n > 192)):
            raise InvalidArgumentError(
                "`pingpong` needs normal mode and block_m=64, or block_m=128 with block_n <= 192 (two slices of "
                f"block_n / 2 accumulators per group) (got swap_ab={self.swap_ab}, block_m={self.block_m}, "
                f"block_n={self.block_n})"
            )
        if isinstance(self.split_k, bool) or not isinstance(self.split_k, int) or not 1 <= self.split_k <= MAX_SPLIT_K:
            raise InvalidArgumentError(f"`split_k` must be an int between 1 and {MAX_SPLIT_K} (got {self.split_k!r})")
        if self.split_k > 1 and not self.swap_ab:
            raise InvalidArgumentError(f"`split_k` > 1 needs swap mode (got split_k={self.split_k}, swap_ab=False)")
        if self.split_k > 1 and self.block_m > 64:
            raise InvalidArgumentError(
                f"`split_k` > 1 needs block_m <= 64 (fitted swap tiles take no split-K) (got split_k={self.split_k}, "
                f"block_m={self.block_m})"
            )
        if self.stages < 2:
            raise InvalidArgumentError(f"`stages` must be at least 2 (got {self.stages})")
        if self.cluster not in (1, 2) or isinstance(self.cluster, bool):
            raise InvalidArgumentError(f"`cluster` must be 1 or 2 (got {self.cluster!r})")
        if self.cluster == 2 and (
            self.swap_ab or self.block_m == 256 or self.split_k > 1 or (self.gather and self.gather_mode != "staged")
        ):
            raise InvalidArgumentError(
                "`cluster=2` needs normal mode, block_m 64, 128 or 192, no split-K, and gather_mode='staged' if gathering "
                f"(got swap_ab={self.swap_ab}, block_m={self.block_m}, split_k={self.split_k}, gather={self.gather}, "
                f"gather_mode={self.gather_mode!r})"
            )
        # Store warps and dynamic tiles both need the cooperative 128-row tile whose producer warps
        # are free (no in-loop gather).
        cooperative_128 = not (self.swap_ab or self.pingpong or self.block_m != 128
                               or (self.gather and self.gather_mode != "staged"))
        if not isinstance(self.tiled_w, bool):
            raise InvalidArgumentError(f"`tiled_w` must be a bool (got {self.tiled_w!r})")
        for flag in ("store_warps", "dynamic"):
            value = getattr(self, flag)
            if not isinstance(value, bool):
                raise InvalidArgumentError(f"`{flag}` must be a bool (got {value!r})")
            swap_dynamic = (flag == "dynamic" and self.swap_ab and self.split_k == 1
                            and (not self.gather or self.gather_mode == "staged"))
            if value and not cooperative_128 and not swap_dynamic:
                raise InvalidArgumentError(
                    f"`{flag}=True` needs normal mode, block_m=128, no ping-pong"
                    + (" (or, dynamic tiles, swap mode without split-K)" if flag == "dynamic" else "")
                    + f", and gather_mode='staged' if gathering (got swap_ab={self.swap_ab}, block_m={self.block_m}, "
                    f"pingpong={self.pingpong}, split_k={self.split_k}, gather={self.gather}, "
                    f"gather_mode={self.gather_mode!r})"
                )
        if shared_bytes(self) > MAX_SHARED_BYTES:
            raise InvalidArgumentError(
                f"`stages`={self.stages} needs {shared_bytes(self)} bytes of shared memory, "
                f"more than the {MAX_SHARED_BYTES} a block may use"
            )

    def with_gather_mode(self, mode: str) -> GemmConfig:
        """The same tiles with the gather method ``mode``. A 2-CTA cluster, store warps and dynamic
        tiles are kept only with the staged gather: the in-loop gathers (``"cp_async"``,
        ``"tma"``) run without (they need the producer's warps)."""
        staged = mode == "staged"
        cfg = self if staged or not self.store_warps else without_store_warps(self)
        return dataclasses.replace(cfg, gather_mode=mode, cluster=self.cluster if staged else 1,
                                   dynamic=self.dynamic and staged)

    @property
    def num_consumers(self) -> int:
        """Consumer (wgmma) warp groups per block."""
        return _num_consumers(self.block_m, self.block_n, self.swap_ab, self.pingpong)

    @property
    def kernel_name(self) -> str:
        """Name of the ``extern "C"`` entry point, e.g. ``sb_grouped_gemm_bf16_bm128_bn256_s4_gcpa_silu``
        (``_gcpa``: cp.async gather, ``_gtma``: TMA gather, ``_gstg``: staged gather, nothing: no gather; ``..._swap_sk4_...``
        with ``split_k=4``)."""
        name = f"sb_grouped_gemm_{self.dtype}_bm{self.block_m}_bn{self.block_n}_s{self.stages}"
        if self.swap_ab:
            name += "_swap"
        if self.split_k > 1:
            name += f"_sk{self.split_k}"
        if self.pingpong:
            name += "_pp"
        if self.gather:
            name += {"tma": "_gtma", "staged": "_gstg"}.get(self.gather_mode, "_gcpa")
        if self.activation == "silu_and_mul":
            name += "_silu"
        if self.cluster > 1:
            name += f"_c{self.cluster}"
        if self.store_warps:
            name += "_sw"
        if self.dynamic:
            name += "_dyn"
        if self.tiled_w:
            name += "_wt"
        return name


def threads(cfg: GemmConfig) -> int:
    """Threads per block: one producer warp group plus the consumer warp groups."""
    return 128 * (1 + cfg.num_consumers)


def shared_bytes(cfg: GemmConfig) -> int:
    """Dynamic shared memory per block, in bytes.

    Mirrors ``GemmShape::kSmemBytes`` (the generated source checks the two agree with a
    ``static_assert``): the stage ring, two epilogue staging buffers per consumer warp group
    (64 rows, or ``block_m`` tokens in swap mode, of 128 bytes; a tall tile's group stores
    its two slices one after the other through the same two; with store warps one per 64
    output columns of a tile, if that is more), the mbarriers padded to the
    struct's 1024-byte alignment, and 1024 bytes of slack to align the base.
    """
    return _smem_bytes(cfg.block_m, cfg.block_n, cfg.stages, cfg.swap_ab, cfg.pingpong,
                       _epi_bufs(cfg.block_n, cfg.activation, cfg.store_warps))


def _epi_bufs(block_n: int, activation: str | None, store_warps: bool) -> int:
    """Staging buffers per consumer warp group (``kEpiBufs`` in the kernel): two, or with store
    warps one per 64 output columns of a tile if that is more."""
    chunks = -(-(block_n // 2 if activation == "silu_and_mul" else block_n) // 64)
    return max(2, chunks) if store_warps else 2


def _num_consumers(block_m: int, block_n: int, swap_ab: bool, pingpong: bool) -> int:
    """Consumer warp groups: one per 64 weight rows (swap), two (ping-pong or 256-row tall
    tiles, 128 rows each), else one per 64 token rows."""
    if pingpong:
        return 2
    return (block_n if swap_ab else (128 if block_m == 256 else block_m)) // 64


def _smem_bytes(block_m: int, block_n: int, stages: int, swap_ab: bool, pingpong: bool, epi_bufs: int = 2) -> int:
    ring = stages * (block_m + block_n) * _BLOCK_K * 2
    consumers = _num_consumers(block_m, block_n, swap_ab, pingpong)
    epilogue = consumers * epi_bufs * min(block_m, 64) * 128  # 64 rows, or (swap) at most 64 tokens
    barriers = 16 * stages + 20 * TILE_SLOTS  # the stage ring's and the dynamic tile ring's (and its ids)
    return ring + epilogue + -(-barriers // 1024) * 1024 + 1024


#: Entries of the dynamic tile ring (``kTileSlots`` in the kernel).
TILE_SLOTS = 4


def _token_box_rows(cfg: GemmConfig) -> int:
    """Token rows per TMA box without gather (``GemmShape::kXBoxRows``): one 64-row slice where
    a consumer group runs two (tall tiles, 128-row ping-pong), :data:`FITTED_X_BOX_ROWS` for
    fitted swap tiles whose size it divides (else one wgmma N step, 16), else the whole tile."""
    if _slices(cfg) > 1:
        return 64
    if is_fitted(cfg):
        return FITTED_X_BOX_ROWS if cfg.block_m % FITTED_X_BOX_ROWS == 0 else FITTED_N_STEP
    return cfg.block_m


#: Token rows by which a fitted swap tile's wgmma N grows (``GemmShape::kNStep``).
FITTED_N_STEP = 16
#: Token rows per TMA box of a fitted swap tile (where they divide its size; see
#: ``GemmShape::kXBoxRows``): 32-row boxes were 4-11 % faster than 16-row ones in the 160-token
#: tiles on the H200 (2026-11-29, ``benchmarks/results/dev_fitted_box_check.json``).
FITTED_X_BOX_ROWS = 32
#: The token counts a fitted swap tile may have (``block_m`` in swap mode above 64).
FITTED_SIZES = (128, 144, 160, 176, 192, 256)


def is_fitted(cfg: GemmConfig) -> bool:
    """A fitted swap tile (``swap_ab`` with ``block_m`` in :data:`FITTED_SIZES`): each expert's rows are split
    evenly over its ``ceil(rows / block_m)`` m-blocks, and each tile's wgmma N is its row count
    rounded up to :data:`FITTED_N_STEP`, so that no tile computes more than 15 rows past its
    expert's end."""
    return cfg.swap_ab and cfg.block_m > 64


def _slices(cfg: GemmConfig) -> int:
    """64-row wgmma slices per consumer group (``GemmShape::kSlices``)."""
    return 2 if not cfg.swap_ab and cfg.block_m == (128 if cfg.pingpong else 256) else 1


def tiles_per_task(rows: int, n: int, cfg: GemmConfig) -> int:
    """Tiles of one task of ``rows`` token rows against a weight of ``n`` rows (each of the
    ``ceil(rows / block_m) * ceil(n / block_n)`` output tiles counts ``split_k`` times)."""
    return -(-rows // cfg.block_m) * -(-n // cfg.block_n) * cfg.split_k


def max_output_tiles(total_rows: int, num_experts: int, n: int, cfg: GemmConfig) -> int:
    """An upper bound on the output tiles (tiles without the split) of any routing of
    ``total_rows`` rows over ``num_experts`` experts: at most ``min(E, rows)`` experts are
    non-empty, and sum(ceil(m_e / bm)) <= (rows + (bm - 1) * non-empty experts) // bm."""
    nonempty = min(num_experts, total_rows)
    m_blocks = (total_rows + (cfg.block_m - 1) * nonempty) // cfg.block_m
    return m_blocks * -(-n // cfg.block_n)


def splitk_workspace_floats(total_rows: int, num_experts: int, n: int, cfg: GemmConfig) -> int:
    """float32 elements of the split-K workspace (0 without split-K): one
    ``block_m * block_n`` partial per tile, for :func:`max_output_tiles` ``* split_k`` tiles."""
    if cfg.split_k == 1:
        return 0
    return max_output_tiles(total_rows, num_experts, n, cfg) * cfg.split_k * cfg.block_m * cfg.block_n


def splitk_counter_count(total_rows: int, num_experts: int, n: int, cfg: GemmConfig) -> int:
    """int32 arrival counters of split-K (0 without): one per output tile and consumer warp group."""
    if cfg.split_k == 1:
        return 0
    return max_output_tiles(total_rows, num_experts, n, cfg) * cfg.num_consumers


def kernel_source(cfg: GemmConfig) -> str:
    """The translation unit of one configuration: includes plus one ``extern "C"`` entry point.

    Parameters
    ----------
    cfg : GemmConfig
        The configuration to instantiate.

    Returns
    -------
    str
        CUDA C++ for NVRTC (``-arch=sm_90a -std=c++17`` with ``cuda_src`` on the include path).
    """
    b = "true" if cfg.dtype == "bf16" else "false"
    swap = "true" if cfg.swap_ab else "false"
    staged = cfg.gather and cfg.gather_mode == "staged"
    gather = "true" if cfg.gather and not staged else "false"
    silu = "true" if cfg.activation == "silu_and_mul" else "false"
    pp = "true" if cfg.pingpong else "false"
    tma_gather = "true" if cfg.gather and cfg.gather_mode == "tma" else "false"
    stg = "true" if staged else "false"
    sk = cfg.split_k
    sw = "true" if cfg.store_warps else "false"
    dyn = ", true" if cfg.dynamic else ""
    if cfg.tiled_w:
        dyn = f", {'true' if cfg.dynamic else 'false'}, true"
    epi_bufs = _epi_bufs(cfg.block_n, cfg.activation, cfg.store_warps)
    cluster_dims = f"__cluster_dims__({cfg.cluster}, 1, 1) " if cfg.cluster > 1 else ""
    return f"""// Generated by staticbatch_moe._gemm_config.kernel_source for {cfg!r}
#include <staticbatch/moe/grouped_gemm.cuh>

using SbShape = staticbatch::moe::GemmShape<{cfg.block_m}, {cfg.block_n}, {cfg.stages}, {swap}, {pp}, {epi_bufs}>;
static_assert(SbShape::kSmemBytes == {shared_bytes(cfg)}, "shared_bytes() disagrees with the kernel");
static_assert(staticbatch::moe::epi_bufs<{cfg.block_n}, {silu}, {sw}>() == {epi_bufs}, "_epi_bufs() disagrees with the kernel");
static_assert(SbShape::kThreads == {threads(cfg)}, "threads() disagrees with the kernel");

extern "C" __global__ void {cluster_dims}__launch_bounds__({threads(cfg)}, 1) {cfg.kernel_name}(
    const __grid_constant__ staticbatch::ptx::TmaDescriptor w_map,
    const __grid_constant__ staticbatch::ptx::TmaDescriptor a_map, const void* a, long long lda, void* out,
    const int* gather_idx, const int* tile_offsets, const int* task_rows, const long long* task_starts,
    const int* task_expert, int num_tasks, int n, int k, void* workspace, unsigned* counters, const int* slot_to_row,
    int num_tokens, int top_k, const int* split_hot_total, const int* split_cold_total, float split_cost,
    int split_sms, int split_role) {{
  staticbatch::moe::grouped_gemm<{b}, {cfg.block_m}, {cfg.block_n}, {cfg.stages}, {swap}, {gather}, {silu}, {pp},
                                 {tma_gather}, {sk}, {stg}, {cfg.cluster}, {sw}{dyn}>(
      w_map, a_map, a, static_cast<staticbatch::int64_t>(lda), out, gather_idx, tile_offsets, task_rows,
      reinterpret_cast<const staticbatch::int64_t*>(task_starts), task_expert, num_tasks, n, k, workspace,
      reinterpret_cast<staticbatch::uint32_t*>(counters), slot_to_row, num_tokens, top_k, split_hot_total,
      split_cold_total, split_cost, split_sms, split_role);
}}
"""


def check_mlp_config(cfg: GemmConfig) -> GemmConfig:
    """Checks that ``cfg`` describes a tile of :func:`mlp_kernel_source`'s kernel (both GEMMs of a
    layer in one launch): swap mode of at most 64 tokens, no split-K, no cluster. Returns it."""
    if not isinstance(cfg, GemmConfig):
        raise InvalidArgumentError(f"`config` must be a GemmConfig (got {type(cfg).__name__})")
    if not cfg.swap_ab or cfg.block_m > 64 or cfg.split_k != 1 or cfg.cluster != 1:
        raise InvalidArgumentError(
            "`config` of the one-launch expert MLP must be a swap-mode tile (swap_ab=True) of at most 64 tokens "
            f"without split-K or clusters (got swap_ab={cfg.swap_ab}, block_m={cfg.block_m}, split_k={cfg.split_k}, "
            f"cluster={cfg.cluster})"
        )
    return cfg


def mlp_kernel_name(cfg: GemmConfig) -> str:
    """Entry point of the one-launch expert MLP for a tile, e.g. ``sb_grouped_mlp_bf16_bm8_bn128_s12``."""
    return f"sb_grouped_mlp_{cfg.dtype}_bm{cfg.block_m}_bn{cfg.block_n}_s{cfg.stages}"


def mlp_kernel_source(cfg: GemmConfig) -> str:
    """The translation unit of the one-launch expert MLP (``staticbatch::moe::grouped_mlp`` in
    ``cuda_src/staticbatch/moe/grouped_mlp.cuh``) for the swap-mode tile ``cfg`` (only its
    ``block_m``, ``block_n``, ``stages`` and ``dtype`` matter).

    Entry point (argument order and C types)::

        extern "C" __global__ void <mlp_kernel_name(cfg)>(
            const __grid_constant__ staticbatch::ptx::TmaDescriptor w1_map,  // packed w1 [E, 2I, H]
            const __grid_constant__ staticbatch::ptx::TmaDescriptor w2_map,  // w2 [E, H, I]
            const void* x, long long ldx,  // [T, H], row stride ldx
            void* mid, void* out,          // [M, I] and [M, H], contiguous
            const int* gather_idx, const int* tile_offsets1, const int* tile_offsets2,
            const int* task_rows, const long long* task_starts, const int* task_expert,
            int num_tasks, int hidden, int inter,
            unsigned* counters);           // 1 + (m-blocks of GEMM 1) zeroed words, zero again after

    Both descriptors are :func:`weight_tma_descriptor` ``(w, cfg)``; ``tile_offsets1`` is built
    for ``n = 2I``, ``tile_offsets2`` for ``n = H`` (same ``block_m``, ``block_n``). Launch
    ``threads(cfg)`` threads, ``shared_bytes(cfg)`` bytes of shared memory (at least half an SM's,
    so one block per SM) and at most as many blocks as SMs: every block must be resident.
    """
    check_mlp_config(cfg)
    b = "true" if cfg.dtype == "bf16" else "false"
    return f"""// Generated by staticbatch_moe._gemm_config.mlp_kernel_source for {cfg!r}
#include <staticbatch/moe/grouped_mlp.cuh>

using SbShape = staticbatch::moe::GemmShape<{cfg.block_m}, {cfg.block_n}, {cfg.stages}, true, false>;
static_assert(SbShape::kSmemBytes == {shared_bytes(cfg)}, "shared_bytes() disagrees with the kernel");
static_assert(SbShape::kThreads == {threads(cfg)}, "threads() disagrees with the kernel");

extern "C" __global__ void __launch_bounds__({threads(cfg)}, 1) {mlp_kernel_name(cfg)}(
    const __grid_constant__ staticbatch::ptx::TmaDescriptor w1_map,
    const __grid_constant__ staticbatch::ptx::TmaDescriptor w2_map, const void* x, long long ldx, void* mid,
    void* out, const int* gather_idx, const int* tile_offsets1, const int* tile_offsets2, const int* task_rows,
    const long long* task_starts, const int* task_expert, int num_tasks, int hidden, int inter,
    unsigned* counters) {{
  staticbatch::moe::grouped_mlp<{b}, {cfg.block_m}, {cfg.block_n}, {cfg.stages}>(
      w1_map, w2_map, x, static_cast<staticbatch::int64_t>(ldx), mid, out, gather_idx, tile_offsets1, tile_offsets2,
      task_rows, reinterpret_cast<const staticbatch::int64_t*>(task_starts), task_expert, num_tasks, hidden, inter,
      reinterpret_cast<staticbatch::uint32_t*>(counters));
}}
"""


def mlp_flag_count(total_rows: int, num_experts: int, block_m: int) -> int:
    """Counter words the one-launch expert MLP needs: one exit counter plus a flag per m-block of
    GEMM 1 (at most ``ceil(total_rows / block_m) + num_experts`` of them)."""
    return 1 + -(-total_rows // block_m) + num_experts


def _max_stages(block_m: int, block_n: int, cap: int, swap_ab: bool = False, pingpong: bool = False,
                epi_bufs: int = 2) -> int:
    """The deepest ring (at most ``cap``) that fits in shared memory with the epilogue buffers."""
    for s in range(cap, 2, -1):
        if _smem_bytes(block_m, block_n, s, swap_ab, pingpong, epi_bufs) <= MAX_SHARED_BYTES:
            return s
    return 2


#: Use ping-pong (two consumer warp groups alternating 64-row tiles) where the heuristic
#: would otherwise pick a one-consumer 64-row tile. One switch to turn it off.
USE_PINGPONG = True


def _check_shape_args(total_rows: int, num_experts: int, n: int, k: int) -> None:
    if total_rows < 0 or num_experts < 1 or n < 1 or k < 1:
        raise InvalidArgumentError(
            f"`total_rows`, `num_experts`, `n`, `k` must be >= 0, >= 1, >= 1, >= 1 "
            f"(got {total_rows}, {num_experts}, {n}, {k})"
        )


def _rows_estimate(total_rows: int, num_experts: int) -> tuple[int, float, float]:
    """(active experts, mean rows per active expert, rows of a busy expert) under uniform routing."""
    active = max(1, min(num_experts, total_rows))
    avg_m = max(1.0, total_rows / active)
    # Rows of a busy expert under uniform random routing (mean plus two standard deviations),
    # so that most experts fit one token block.
    m_est = avg_m + 2.0 * math.sqrt(avg_m)
    return active, avg_m, m_est


def fitted_config(block_m: int, activation: str | None, dtype: str, gather: bool) -> GemmConfig:
    """The heuristic's fitted swap tile of ``block_m`` (:data:`FITTED_SIZES`) tokens: 128 weight rows, the
    deepest ring, the staged gather when gathering."""
    cfg = _swap_config(block_m, 128, activation, dtype, gather)
    return cfg.with_gather_mode("staged") if gather else cfg


def _swap_config(block_m: int, block_n: int, activation, dtype, gather, split_k: int = 1) -> GemmConfig:
    return GemmConfig(
        block_m=block_m, block_n=block_n, stages=_max_stages(block_m, block_n, 12, swap_ab=True), swap_ab=True,
        activation=activation, dtype=dtype, gather=gather, split_k=split_k,
    )


#: Let choose_config pick 256 x 128 tall tiles (two consumer warp groups of 128 token rows,
#: each two 64-row slices skipped at run time when past the expert's rows) for experts of
#: TALL_MIN_ROWS < mean rows <= TALL_MAX_ROWS, meant to read each weight tile once per 256 rows
#: and waste at most 63 rows per expert. Off: on the H200 (2026-11-28,
#: benchmarks/dev_tall_check.py, T = 1024-16384 for the five model shapes) it was slower than
#: the better of 128 x 256 and ping-pong 64 x 256 at 25 of 30 GEMMs (gate/up up to 2.2x slower:
#: the 128-wide wgmma reads the weight operand twice per K step); reachable through ``config=``.
USE_TALL_TILES = False
TALL_MIN_ROWS = 128
TALL_MAX_ROWS = 600

#: Let choose_config stage the gather (gather_mode="staged": the rows copied to a workspace in
#: the kernel's first phase, then read by TMA) for every gathered problem in normal mode. On the
#: H200 (2026-11-28, gate/up of the five model shapes at T = 1024-16384) it beat the cp.async
#: gather of the same tiles at all 13 normal-mode points, by 4-26 % (Mixtral T=1024 1.06 ->
#: 0.85 ms, GPT-OSS T=4096 1.81 -> 1.35 ms), within 5 % of the same kernel on pre-grouped rows
#: except Qwen3-30B (H=2048: the copy is a larger share). Swap mode (few rows per expert) keeps
#: the cp.async gather, which there costs nothing measurable.
USE_STAGED_GATHER = True

#: Let choose_config run 128-row tiles (experts of more than ~320 rows) in 2-CTA clusters that
#: share each weight tile by TMA multicast (GemmConfig.cluster=2). On the H200 (2026-11-28,
#: benchmarks/results/dev_cluster_check.json, the 20 GEMMs of the five models at T = 4096 and
#: 16384) the clustered 128 x 256 tile was faster than the same tile without at 18 of 20, by up to
#: 11 % (DeepSeek-V3 down at T = 4096: 2.589 against 2.907 ms; Mixtral-8x7B down: 1.479 against
#: 1.599 ms), and at most 1 % slower at the other two. With 64-row ping-pong tiles it was mostly
#: slower (the two CTAs' groups wait on each other), so those run without.
USE_CLUSTERS = True

#: Let choose_config give 128-row tiles store warps (GemmConfig.store_warps): the producer warp
#: group's idle warps copy each staged output tile to global memory while the consumers run the
#: next tile's main loop. With silu_and_mul always (its staging fits beside the usual ring);
#: without, only for K <= STORE_WARPS_MAX_K, since a tile 256 wide then needs a stage less. On the
#: H200 (2026-11-28, benchmarks/results/dev_store_warps_check.json, three interleaved repeats,
#: bit-identical outputs) at T = 16384: down Qwen3-30B-A3B 0.747 -> 0.710 ms, GPT-OSS-120B 1.877 ->
#: 1.813, DeepSeek-V3 6.89 -> 6.66, Qwen3-235B-A22B unchanged; gate/up Qwen3-30B 1.627 -> 1.549,
#: Mixtral-8x7B 12.03 -> 11.70, the others unchanged. Mixtral's down (K = 14336) was unchanged at
#: T = 16384 and 1 % slower at T = 1024 and 4096 with the shorter ring.
USE_STORE_WARPS = True
STORE_WARPS_MAX_K = 4096

#: Let choose_config give 128-row tiles in clusters (``USE_CLUSTERS``) 128 x 192 ping-pong tiles
#: (each consumer warp group a whole tile as two 64-row slices, so one group's epilogue runs
#: under the other's main loop) instead of cooperative 128 x 256 or 128 x 192 tiles with store
#: warps (the widths of PINGPONG128_WIDTHS), where K is at most PINGPONG128_MAX_K. On the H200
#: (2026-11-29; both GEMMs of the layer as bench_grouped_gemm times them, interleaved repeats,
#: bit-identical outputs; two A/Bs on two machines, benchmarks/results/dev_pp128_rule_check.json
#: and dev_pp128_rule_check_repeat.json, ms off -> on):
#:
#: - GPT-OSS-120B (192 wide either way) T = 16384 5.91 -> 5.54 and 5.87 -> 5.61 uniform, 6.00 -> 5.71
#:   skewed, the skewed T = 4096 hot class 2.36 -> 2.30;
#: - Qwen3-30B-A3B T = 16384 uniform 2.26 -> 2.20 and 2.24 -> 2.15, skewed level (+0.4, +1.0 %);
#: - Qwen3-235B-A22B T = 16384 uniform 8.38 -> 8.25 and 8.44 -> 8.12, skewed level and -1.8 %;
#:   T = 4096 -0.8 .. -2.2 %;
#: - DeepSeek-V3 (only its down GEMM, K = 2048) T = 16384 uniform +1.8 % on one machine, -2.6 % on
#:   the other; Mixtral-8x7B (only its gate/up, K = 4096) +0.7 % / -0.9 % uniform, skewed +1.6 %
#:   (one machine): within the machines' spread.
#:
#: Each GEMM alone (dev_pp128_cluster_check.json) the longer-K GEMMs were slower (DeepSeek-V3
#: gate/up, K = 7168, +2 %; Mixtral-8x7B down, K = 14336, +3-4 %), hence the K limit. Under ncu
#: with the clock locked (dev_power_check_ncu.txt) the ping-pong tile kept the tensor pipe busier.
USE_PINGPONG128 = True
PINGPONG128_MAX_K = 4096
PINGPONG128_WIDTHS = (192, 256)

#: Let choose_config give the gathered (gate/up) GEMM's 128-row tiles dynamic tiles
#: (GemmConfig.dynamic: each cluster takes its next pair of tiles from a global counter, so tiles
#: that share a weight or token block start together however far the blocks drift apart). Off:
#: on the H200 (2026-11-29, ncu, T = 16384) it cut DeepSeek-V3's gate/up DRAM reads from 31-32 GB
#: to 18.8 GB (17 GB compulsory), but timed as the benchmark does it was level
#: (benchmarks/results/dev_dynamic_tiles_check_fixed_copy.json, five interleaved repeats,
#: bit-identical outputs: gate/up DeepSeek-V3 13.61 -> 13.56 ms, Qwen3-235B-A22B 5.72 -> 5.67,
#: Qwen3-30B-A3B 1.562 -> 1.567; down 0.5-2.3 % slower). The earlier dev runs that showed 1-6 %
#: gains compared against static launches that, through a host bug since fixed, staged their rows
#: row by row instead of token by token. Reachable through ``config=``.
USE_DYNAMIC_TILES = False

#: Rows per expert up to which swap mode, and up to which 64-row ping-pong tiles, are the
#: heuristic's tiles (choose_config for the average expert, choose_tile_classes per expert).
SWAP_MAX_ROWS = 64
PINGPONG_MAX_ROWS = 320

#: Let grouped_gemm give hot experts taller tiles than the average expert (choose_tile_classes):
#: one launch per class, each over its own experts' tiles. Only from TILE_CLASSES_MIN_TOKENS
#: tokens, where an extra launch that finds no tiles costs little next to the GEMM.
USE_TILE_CLASSES = True
TILE_CLASSES_MIN_TOKENS = 512

#: Fitted swap tiles of 128 tokens (see is_fitted) for the average expert where the busy
#: expert's estimated rows lie in (SWAP_MAX_ROWS, FITTED_MAX_ROWS] (about 64 rows per expert),
#: instead of 64-row ping-pong tiles: an expert costs one tile of its own size, not a full tile
#: plus a nearly empty one. On the H200 (2026-11-28, benchmarks/dev_fitted_swap_check.py, both
#: GEMMs, uniform routing, T = 1024): Qwen3-235B-A22B 1.315 -> 1.275 ms, Qwen3-30B-A3B 0.358 ->
#: 0.352 ms. At 128 rows per expert and more (T = 4096) they were slower than the ping-pong tiles
#: at every model (DeepSeek-V3 7.42 -> 8.00 ms with 256 tokens, 9.07 with 128).
USE_FITTED_SWAP = True
FITTED_MAX_ROWS = 96
#: Where choose_tile_classes gives the average expert 64-row ping-pong tiles with a hot class
#: (USE_HOT_TALL_CLASS) and the busy expert's estimated rows are at most FITTED_WIDE_MAX_ROWS
#: (about 100-150 rows per expert): fitted swap tiles of FITTED_WIDE tokens for the experts of at
#: most FITTED_WIDE_SPLIT[0] rows (one m-block each: every weight tile streamed once, no partial
#: tile), 64-row ping-pong tiles up to FITTED_WIDE_SPLIT[1] rows and the hot class above. On the
#: H200 (2026-11-29, benchmarks/results/dev_fitted_wide_classes_check.json, both GEMMs, median of
#: five interleaved repeats): DeepSeek-V3 T = 4096 7.43 -> 7.04 ms uniform, 8.53 -> 8.49 skewed;
#: GPT-OSS-120B T = 4096 2.13 -> 1.99 / 2.47 -> 2.40; Qwen3-235B-A22B T = 2048 1.61 -> 1.60 /
#: 1.90 -> 1.85; bit-identical outputs. Fitted tiles lose speed with their token count at equal
#: work (dev_fitted192_check.json: 128 rows per expert, gate/up 4.44 ms with 128 tokens, 4.58
#: with 160, 4.96 with 192, 5.54 with 256), so 160, not larger; 144 was level with 160.
USE_FITTED_WIDE = True
FITTED_WIDE = 160
FITTED_WIDE_MAX_ROWS = 176
FITTED_WIDE_SPLIT = (FITTED_WIDE, PINGPONG_MAX_ROWS)
#: Below TILE_CLASSES_MIN_TOKENS, from FITTED_CLASS_MIN_TOKENS tokens up, with swap tiles of at
#: most FITTED_CLASS_MIN_ROWS tokens for the average expert and a weight of at least
#: FITTED_CLASS_MIN_WEIGHT elements per expert: experts of more than FITTED_CLASS_MIN_ROWS rows
#: get a class of fitted 128-token tiles (skewed routing makes a few experts hot; uniform routing
#: leaves the class empty or nearly). On the H200 (2026-11-28, benchmarks/dev_fitted_rule_check.py,
#: both GEMMs, T = 128, skewed routing): DeepSeek-V3 3.90 -> 3.70 ms, Qwen3-235B-A22B 1.199 ->
#: 1.109 ms, GPT-OSS-120B 1.164 -> 1.105 ms; uniform routing level to 0.8 % slower (the empty launch).
#: Qwen3-30B-A3B (weights of 3.1M and 1.6M elements) was 2 % slower with it under both routings:
#: a second launch costs too much next to so small a GEMM, hence the weight floor.
USE_FITTED_CLASS = True
FITTED_CLASS_MIN_TOKENS = 128
FITTED_CLASS_MIN_ROWS = 32
FITTED_CLASS_MIN_WEIGHT = 4_000_000

#: From HOT_TALL_MIN_TOKENS tokens, where choose_config gives the average expert 64-row ping-pong
#: tiles and the weight has at least HOT_TALL_MIN_WEIGHT elements per expert: experts of more than
#: PINGPONG_MAX_ROWS rows get a class of the 128-row tiles (2-CTA cluster, store warps) that
#: choose_config gives experts of that size. With skewed routing the hot experts then read each
#: weight stage once per 128 rows (a dead 64-row half skipped, GemmShape::kDeadSkip); uniform
#: routing leaves the class empty at these sizes. On the H200 (2026-11-28,
#: benchmarks/results/dev_hot128_check.json, both GEMMs, median of three interleaved repeats),
#: skewed routing at T = 4096: DeepSeek-V3 9.11 -> 8.39 ms, GPT-OSS-120B 2.49 -> 2.36 ms,
#: Qwen3-235B-A22B 2.93 -> 2.72 ms; uniform within noise (the empty launch). Not taken for
#: Qwen3-30B-A3B (weights of 3.1M and 1.6M elements: 0.71 -> 0.76 ms skewed) nor Mixtral-8x7B at
#: T = 1024 (8 experts: 1.38 -> 1.47 ms skewed), hence the two floors.
USE_HOT_TALL_CLASS = True
HOT_TALL_MIN_TOKENS = 2048
HOT_TALL_MIN_WEIGHT = 4_000_000

#: With tiled weights (``tiled_w``), from HOT_TALL_MIN_TOKENS tokens, where choose_config gives
#: the average expert 64-row ping-pong tiles, K is at most PINGPONG128_MAX_K (so the 128-row tile
#: is the 128 x 192 ping-pong cluster) and the mean active expert has at least
#: TILED_TALL_MIN_ROWS rows: one class of those 128-row clustered tiles for every expert, in place
#: of the 64-row tiles and the hot class. On the H200 (2026-11-29, tiled weights, each GEMM alone,
#: three interleaved repeats, bit-identical outputs; benchmarks/results/dev_tiled_rule_check.json
#: and dev_t4096_tiled_candidates_check.json, ms heuristic -> all 128-row):
#:
#: - Qwen3-235B-A22B T = 4096 uniform: down 0.976 -> 0.827 (the 64-row tiles lose 10 % to plain
#:   weights there), gate/up 1.69 -> 1.73 in one run and -7 % in the other; skewed: gate/up
#:   -1.3 %, down -5 %;
#: - Qwen3-30B-A3B T = 4096 (256 rows per expert): uniform within 2 % either way in both runs,
#:   skewed -6 % on both GEMMs.
#:
#: At 128 rows per expert (Qwen3-30B and Qwen3-235B at T = 2048, GPT-OSS-120B and DeepSeek-V3 at
#: T = 4096) the 128-row tiles for every expert were -2.4 .. +4.4 % (DeepSeek-V3 gate/up, K = 7168,
#: +4.4 %), hence the row floor; Mixtral-8x7B at T = 1024 (256 rows, below the token floor) lost
#: 3-11 % on its down GEMM (K = 14336: cooperative 128 x 256 tiles), hence the K limit. Both GEMMs
#: as the layer runs them (dev_tiled_tall_ab.json, five repeats): GPT-OSS-120B T = 6144 3.28 ->
#: 2.50 ms (its 64 x 192 tiles ran 24-28 % slower on tiled weights, dev_pp_tiled_check.json),
#: Qwen3-235B-A22B T = 4096 -1.1 % uniform, -2.5 % skewed.
#:
#: Also with tiled weights and USE_TILED_TALL, where choose_tile_classes gives fitted swap tiles
#: below a 64-row ping-pong class and a 128-row class (USE_FITTED_WIDE), the ping-pong class goes
#: and the 128-row class starts at FITTED_WIDE_SPLIT[0]: at DeepSeek-V3 and GPT-OSS-120B T = 4096
#: (dev_class_launch_check.json, each GEMM alone, over plain weights with the three classes) 1.042 /
#: 1.034 / 1.024 / 1.024 uniform against 1.069 / 1.030 / 1.024 / 1.033 with the three classes on
#: tiled weights, skewed 0.937 / 1.001 / 0.970 / 0.963 against 0.932 / 1.030 / 0.972 / 0.984.
USE_TILED_TALL = True
TILED_TALL_MIN_ROWS = 192

#: Let choose_config pick split-K (swap mode, few tiles). Off: on the H200 (2026-11-28,
#: benchmarks/dev_splitk_check.py, T=1 for the five model shapes) every split of every
#: decode GEMM was slower than the unsplit tile (by 2-53 %), so split-K is only reachable
#: through ``config=`` for experiments.
USE_SPLIT_K = False
#: Split-K: the fewest K steps (of 64) a slice keeps, and the least predicted gain (fraction
#: of the unsplit time) for which choose_config splits at all.
SPLIT_K_MIN_STEPS = 4
SPLIT_K_MIN_GAIN = 0.10
#: Split-K is considered only while the unsplit tiles number fewer than this many waves.
SPLIT_K_MAX_WAVES = 4
#: Per-tile overhead of the swap-mode cost model, in K steps of a 128-row weight tile
#: (tile start and epilogue not hidden by the ring).
_TILE_OVERHEAD_STEPS = 0.5


def _swap_cost(m_tiles: int, n: int, k_steps: int, block_m: int, block_n: int, split_k: int, num_sms: int) -> float:
    """Predicted time of a weight-streaming (swap-mode) GEMM, in K steps of a 128-row weight
    tile on one SM: the busiest SM's tiles times the cost of one tile. Memory bound, so a
    K step costs in proportion to its weight bytes (block_n / 128); a split tile also writes
    a block_m x block_n fp32 partial and (the last slice) reads them back."""
    tiles = m_tiles * -(-n // block_n) * split_k
    per_tile = -(-k_steps // split_k) * block_n / 128 + _TILE_OVERHEAD_STEPS
    if split_k > 1:
        per_tile += 2 * block_m * block_n * 4 / (128 * 128)  # partial out + back, over a step's 16 KB
    return math.ceil(tiles / num_sms) * per_tile


def _choose_split(m_tiles: int, n: int, k: int, block_m: int, block_n: int, num_sms: int) -> tuple[int, int]:
    """(block_n, split_k) for a swap-mode problem whose unsplit choice is ``block_n``: the
    split (and width) with the least predicted time, if that beats no split by
    SPLIT_K_MIN_GAIN and the unsplit tiles are fewer than SPLIT_K_MAX_WAVES waves."""
    k_steps = -(-k // _BLOCK_K)
    base = _swap_cost(m_tiles, n, k_steps, block_m, block_n, 1, num_sms)
    if m_tiles * -(-n // block_n) >= SPLIT_K_MAX_WAVES * num_sms:
        return block_n, 1
    best = (base, 1, block_n)
    for bn in (128, 64):
        for split in range(2, MAX_SPLIT_K + 1):
            if k_steps < split * SPLIT_K_MIN_STEPS:
                break
            # 64-wide tiles keep half the bytes in flight per SM: taken only if clearly better.
            cost = _swap_cost(m_tiles, n, k_steps, block_m, bn, split, num_sms) * (1.05 if bn == 64 else 1.0)
            if cost < best[0] - 1e-9:
                best = (cost, split, bn)
    if best[1] == 1 or best[0] > (1.0 - SPLIT_K_MIN_GAIN) * base:
        return block_n, 1
    return best[2], best[1]


def _normal_config(block_m: int, block_n: int, pingpong: bool, activation, dtype, gather) -> GemmConfig:
    return GemmConfig(
        block_m=block_m, block_n=block_n, stages=_max_stages(block_m, block_n, 6, pingpong=pingpong),
        swap_ab=False, activation=activation, dtype=dtype, gather=gather, pingpong=pingpong,
    )


@functools.lru_cache(maxsize=4096)
def choose_config(
    total_rows: int,
    num_experts: int,
    n: int,
    k: int,
    dtype: str = "bf16",
    activation: str | None = None,
    gather: bool = False,
    num_sms: int = DEFAULT_NUM_SMS,
) -> GemmConfig:
    """Pick a configuration from the problem's shape (a heuristic, no tuning files).

    A pure function of its arguments.

    Parameters
    ----------
    total_rows : int
        Rows of the grouped problem (tokens times top-k).
    num_experts : int
        Number of experts (tasks).
    n : int
        Weight rows per expert (``2 * intermediate`` for gate/up, ``hidden`` for down).
    k : int
        Reduction size.
    dtype : str
        ``"bf16"`` or ``"fp16"``.
    activation : str or None
        ``None`` or ``"silu_and_mul"``.
    gather : bool
        Whether input rows are gathered through ``gather_idx``.
    num_sms : int
        Streaming multiprocessors of the device.

    Returns
    -------
    GemmConfig
        Assumes uniform routing: ``min(num_experts, total_rows)`` experts with about
        ``total_rows / active`` rows each. Small rows per expert use swap mode (weight
        streaming: narrow weight tiles so every SM has work, deep rings). Larger ones use the
        normal mode: 64-row ping-pong tiles for experts of at most ~320 rows, else 128-row tiles
        in 2-CTA clusters sharing the weight tile (``USE_CLUSTERS``); 256 wide (192 where that
        pads N clearly less) when that still gives every SM a tile, else 128. A gathered
        normal-mode problem stages the gather (``gather_mode="staged"``, ``USE_STAGED_GATHER``).
        With ``USE_SPLIT_K`` (off by default: measured slower) swap mode with fewer weight tiles
        than a few waves of SMs would take split-K when a simple model of the busiest SM's
        weight bytes (:func:`_swap_cost`) predicts at least a 10 % gain, each slice keeping at
        least 4 K steps of 64.
    """
    _check_shape_args(total_rows, num_experts, n, k)
    active, avg_m, m_est = _rows_estimate(total_rows, num_experts)
    if m_est <= SWAP_MAX_ROWS:
        block_m = next(b for b in (8, 16, 32, 48, 64) if m_est <= b)
        m_tiles = active * math.ceil(avg_m / block_m)
        # Weight streaming: the width whose tiles fill the last wave best (ties to 128).
        e128 = _wave_efficiency(m_tiles * math.ceil(n / 128), num_sms)
        e64 = _wave_efficiency(m_tiles * math.ceil(n / 64), num_sms)
        block_n = 128 if e128 >= e64 - 0.02 else 64
        split_k = 1
        if USE_SPLIT_K:
            block_n, split_k = _choose_split(m_tiles, n, k, block_m, block_n, num_sms)
        return _swap_config(block_m, block_n, activation, dtype, gather, split_k)
    if USE_FITTED_SWAP and m_est <= FITTED_MAX_ROWS:
        return fitted_config(128, activation, dtype, gather)
    if USE_TALL_TILES and TALL_MIN_ROWS < avg_m <= TALL_MAX_ROWS:
        # Each weight tile once per 256 rows of an expert, at most 63 rows of wasted compute.
        return _normal_config(256, 128, False, activation, dtype, gather)
    # 64-row (ping-pong) tiles up to ~320 rows per expert: the last, partial token block of an
    # expert wastes less, and the other group's main loop hides each epilogue. They won at every
    # K measured on the H200 (2026-11-28): DeepSeek-V3 gate/up at T = 4096, 128 rows per expert,
    # 4.74 against 5.36 ms for 128 x 256 (benchmarks/results/dev_staged_tiles_check.json), and
    # Mixtral-8x7B's down GEMM (K = 14336) at T = 1024, 256 rows per expert, 0.445 against 0.488 ms
    # (dev_cluster_check.json; 0.425 against 0.457 in dev_staged_tiles_check.json).
    block_m = 64 if avg_m <= PINGPONG_MAX_ROWS else 128
    m_tiles = active * math.ceil(avg_m / block_m)
    # The wide tile: 256 weight rows, or 192 where that pads N clearly less (GPT-OSS-120B: N = 2880
    # is 11.25 tiles of 256 and 15 of 192; on the H200, 2026-11-28, its down GEMM at T = 4096 took
    # 0.653-0.664 ms with 192 against 0.729-0.730 ms with 256, gate/up 1.32 against 1.39 ms, and at
    # T = 16384 3.88 / 1.93 against 4.01 / 1.97 ms, two runs each).
    wide = _wide_tile(n, lambda bn: _wave_efficiency(m_tiles * math.ceil(n / bn), num_sms))
    e_wide = _wave_efficiency(m_tiles * math.ceil(n / wide), num_sms)
    e128 = _wave_efficiency(m_tiles * math.ceil(n / 128), num_sms)
    block_n = wide if e_wide >= e128 - 0.05 else 128
    return _prefill_config(block_m, block_n, activation, dtype, gather, k)


def _prefill_config(block_m: int, block_n: int, activation, dtype, gather, k: int,
                    pingpong128: bool = True) -> GemmConfig:
    """The heuristic's normal-mode tile: ping-pong for 64 rows; for 128 rows a 2-CTA cluster
    (``USE_CLUSTERS``) of 128 x 192 ping-pong tiles where ``k <= PINGPONG128_MAX_K`` and
    ``block_n`` in ``PINGPONG128_WIDTHS`` (``USE_PINGPONG128``), else of cooperative tiles with store warps
    (``USE_STORE_WARPS``: with ``silu_and_mul``, or for ``k <= STORE_WARPS_MAX_K``) and, when
    gathering, dynamic tiles (``USE_DYNAMIC_TILES``); the staged gather when gathering
    (``USE_STAGED_GATHER``). ``pingpong128=False``: the cooperative tile even where the ping-pong
    rule applies (for sweeps)."""
    no_loop_gather = not gather or USE_STAGED_GATHER  # clusters and store warps need it
    clustered = block_m == 128 and USE_CLUSTERS and no_loop_gather
    pingpong = USE_PINGPONG and block_m == 64
    if (clustered and pingpong128 and USE_PINGPONG128 and k <= PINGPONG128_MAX_K
            and block_n in PINGPONG128_WIDTHS):
        pingpong, block_n = True, 192
    cfg = _normal_config(block_m, block_n, pingpong, activation, dtype, gather)
    if gather and USE_STAGED_GATHER:
        cfg = dataclasses.replace(cfg, gather_mode="staged")
    if clustered:
        cfg = dataclasses.replace(cfg, cluster=2)
    cooperative = block_m == 128 and not pingpong and no_loop_gather  # store warps and dynamic tiles need it
    if cooperative and USE_STORE_WARPS and (activation is not None or k <= STORE_WARPS_MAX_K):
        cfg = with_store_warps(cfg)
    if cooperative and USE_DYNAMIC_TILES and gather:
        cfg = dataclasses.replace(cfg, dynamic=True)
    return cfg


def triple_config(block_n: int, activation, dtype, gather, cluster: int = 2) -> GemmConfig:
    """The 192-row cooperative tile (three consumer warp groups of 64 rows) ``block_n`` wide (at
    most 192), the deepest ring that fits (3 stages at 192 wide, 4 at 128), with the staged
    gather when gathering, in a 2-CTA cluster unless ``cluster=1``. An expert of 257-384 rows
    takes two of these tiles (a cluster reads each weight tile once for both), where 128-row
    tiles take three. Not used by the heuristic; reachable through ``config=`` and
    :func:`candidate_configs`."""
    bn = min(block_n, 192)
    return GemmConfig(block_m=192, block_n=bn, stages=_max_stages(192, bn, 6), activation=activation, dtype=dtype,
                      gather=gather, gather_mode="staged" if gather else _GATHER_MODES[0], cluster=cluster)


def with_store_warps(cfg: GemmConfig) -> GemmConfig:
    """``cfg`` (normal mode, ``block_m=128``, not ping-pong) with store warps and the deepest
    ring (at most 6 stages) that fits beside their staging buffers."""
    stages = _max_stages(cfg.block_m, cfg.block_n, 6, epi_bufs=_epi_bufs(cfg.block_n, cfg.activation, True))
    return dataclasses.replace(cfg, store_warps=True, stages=stages)


def without_store_warps(cfg: GemmConfig) -> GemmConfig:
    """``cfg`` with the consumers storing their own output, its ring deepened as far as the
    freed staging buffers allow (at most 6 stages, never shallower than before)."""
    stages = max(cfg.stages, _max_stages(cfg.block_m, cfg.block_n, 6, cfg.swap_ab, cfg.pingpong))
    return dataclasses.replace(cfg, store_warps=False, stages=stages)


#: With the heuristic's tiles, grouped_gemm takes a programmatic launch (programmatic_launch=True)
#: only for the tiles of :func:`programmatic_pays`. Off: take it for every tile, as asked.
USE_PROGRAMMATIC_RULE = True


def programmatic_pays(cfg: GemmConfig) -> bool:
    """Whether a programmatic dependent launch of ``cfg``'s kernel measured faster than a plain
    one (the down GEMM after the gate/up GEMM, both GEMMs of a layer timed together): swap-mode
    tiles (decode: Qwen3-30B-A3B T = 1 31.3 -> 29.2 us, Qwen3-235B-A22B 82.7 -> 79.8 us) and 2-CTA
    clusters (T >= 4096: level in the median of 12 points). Not 64-row ping-pong tiles without a
    cluster (T = 1024-4096): as programmatic dependents the layer measured 1-10 % slower at 11 of
    14 points (GPT-OSS-120B T = 4096 2.04 against 2.24 ms, Qwen3-235B-A22B 2.45 against 2.61 ms;
    H200, 2026-11-28, benchmarks/dev_pdl_grid_check.py), also with the kernel's early weight
    loads switched off, so the cause is not those loads (not found)."""
    return cfg.swap_ab or cfg.cluster > 1


#: Concurrent classes: where a call's heuristic classes are a compute-bound class of normal-mode
#: tiles for the hot experts and a swap-mode class for the others (skewed routing at T >= 1024
#: makes the first hold most rows and the second stream most of the weights), the two launches
#: share the SMs instead of running one after the other: the hot launch runs its tiles on
#: :func:`split_cost`'s share of the blocks (decided on the GPU from both classes' tile counts,
#: so no host sync) and lets the rest go, the cold launch, its programmatic dependent, starts on
#: the SMs they free without waiting for the hot launch and waits for it only at its end. See
#: "Concurrent classes" in grouped_gemm.cuh.
USE_CONCURRENT_CLASSES = True
#: FLOPs per weight byte at which a tile's compute takes as long as its weight stream: about 80 %
#: of the compute ceiling (755 TFLOP/s) over 4.2 TB/s, the cold class's streaming rate on the H200.
SPLIT_FLOPS_PER_BYTE = 0.8 * 755e12 / 4.2e12


#: Fitted swap tiles of every heuristic call take their tiles from a counter (dynamic tiles) where
#: they do not gather in the loop; as the cold class of concurrent classes they always do. Fitted
#: tiles vary in length with their experts' rows, and in the static order the blocks drift apart.
#: On the H200 (2026-11-29, benchmarks/results/dev_concurrent_split_check_dynamic_fitted.json, both
#: GEMMs, tiled weights): Qwen3-30B-A3B T = 1024 0.364 -> 0.349 ms uniform, 0.412 -> 0.383 skewed;
#: Qwen3-235B-A22B T = 1024 1.347 -> 1.273 and 1.496 -> 1.406 ms; T = 128 level (-0.8 .. 0 %).
USE_DYNAMIC_FITTED = True


def with_dynamic_fitted(cfg: GemmConfig) -> GemmConfig:
    """``cfg`` with dynamic tiles if it is a fitted swap tile that can take them (no in-loop
    gather, no split-K), else ``cfg``."""
    if is_fitted(cfg) and cfg.split_k == 1 and (not cfg.gather or cfg.gather_mode == "staged"):
        return dataclasses.replace(cfg, dynamic=True)
    return cfg


def launch_classes(classes: Sequence[TileClass]) -> tuple[tuple[TileClass, ...], bool]:
    """What grouped_gemm launches for the heuristic's ``classes``: (the classes, fitted ones with
    dynamic tiles as :data:`USE_DYNAMIC_FITTED` and concurrent classes need, whether the two share
    the SMs (:func:`concurrent_pair` and :data:`USE_CONCURRENT_CLASSES`))."""
    return _launch_classes(tuple(classes), USE_CONCURRENT_CLASSES, USE_DYNAMIC_FITTED)


@functools.lru_cache(maxsize=256)
def _launch_classes(classes: tuple[TileClass, ...], concurrent_on: bool,
                    dynamic_on: bool) -> tuple[tuple[TileClass, ...], bool]:
    """:func:`launch_classes` for the given flags; cached, like :func:`with_layout`, so that a
    grouped_gemm call does not rebuild (and re-validate) configurations."""
    if concurrent_on and concurrent_pair(classes):
        cold = classes[1]
        return (classes[0], dataclasses.replace(cold, config=with_dynamic_fitted(cold.config))), True
    if dynamic_on:
        return tuple(dataclasses.replace(c, config=with_dynamic_fitted(c.config)) for c in classes), False
    return classes, False


def concurrent_pair(classes: Sequence[TileClass]) -> bool:
    """Whether the two launches of ``classes`` can share the SMs (USE_CONCURRENT_CLASSES): two
    classes, normal-mode tiles with a static tile order then fitted swap tiles without an in-loop
    gather (they take dynamic tiles), no split-K, and if the second gathers through a staged copy
    so does the first (it stages the rows of both)."""
    if len(classes) != 2:
        return False
    hot, cold = classes[0].config, classes[1].config
    staged = [c.gather and c.gather_mode == "staged" for c in (hot, cold)]
    return (not hot.swap_ab and is_fitted(cold) and not hot.dynamic and hot.split_k == 1 and cold.split_k == 1
            and (not cold.gather or staged[1]) and (staged[0] or not staged[1]))


def split_cost(hot: GemmConfig, cold: GemmConfig) -> float:
    """A cold (swap-mode) tile's time in hot tiles, for the kernel's split of the SMs: the cold
    tile streams block_n x K weight elements, the hot one computes block_m x block_n x K
    multiply-adds (2 FLOPs per weight byte and row), each at its ceiling."""
    return cold.block_n * SPLIT_FLOPS_PER_BYTE / (hot.block_m * hot.block_n)


@dataclass(frozen=True)
class TileClass:
    """The tasks (experts) whose row count ``m`` satisfies ``min_rows < m <= max_rows`` run
    with ``config`` (``max_rows=None``: no upper bound).

    :func:`grouped_gemm` runs one launch per class, each over the tiles of its own tasks only,
    so that one call can cut a hot expert into tall tiles and the cold ones into short or
    swapped ones: a tile height per expert, chosen on the device from its token count with
    no host sync. A list of classes must cover every row count ``m >= 1`` exactly once
    (:func:`check_tile_classes`).
    """

    config: GemmConfig
    min_rows: int = 0
    max_rows: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.config, GemmConfig):
            raise InvalidArgumentError(f"`config` must be a GemmConfig (got {type(self.config).__name__})")
        if isinstance(self.min_rows, bool) or not isinstance(self.min_rows, int) or self.min_rows < 0:
            raise InvalidArgumentError(f"`min_rows` must be an int >= 0 (got {self.min_rows!r})")
        if self.max_rows is not None and (
            isinstance(self.max_rows, bool) or not isinstance(self.max_rows, int) or self.max_rows <= self.min_rows
        ):
            raise InvalidArgumentError(
                f"`max_rows` must be None or an int > min_rows={self.min_rows} (got {self.max_rows!r})"
            )

    @property
    def covers_all(self) -> bool:
        """Whether the class takes every task (no row bounds)."""
        return self.min_rows == 0 and self.max_rows is None


def check_tile_classes(classes, *, dtype: str, activation: str | None, gather: bool) -> tuple[TileClass, ...]:
    """Return ``classes`` as a tuple after checking that their row ranges cover ``m >= 1``
    exactly once and that every configuration matches the call; else raise
    :class:`staticbatch.InvalidArgumentError` naming what is wrong."""
    try:
        classes = tuple(classes)
    except TypeError:
        raise InvalidArgumentError(
            f"`config` must be a GemmConfig or a sequence of TileClass (got {type(classes).__name__})"
        ) from None
    if not classes or not all(isinstance(c, TileClass) for c in classes):
        raise InvalidArgumentError(
            f"`config` must be a GemmConfig or a non-empty sequence of TileClass (got {classes!r})"
        )
    for c in classes:
        cfg = c.config
        if cfg.dtype != dtype or cfg.activation != activation or cfg.gather != gather:
            raise InvalidArgumentError(
                f"`config` must match dtype={dtype}, activation={activation!r}, gather={gather} (got {cfg})"
            )
    ranges = sorted((c.min_rows, c.max_rows) for c in classes if c.max_rows is not None)
    ranges += [(c.min_rows, None) for c in classes if c.max_rows is None]
    edge: int | None = 0
    for i, (lo, hi) in enumerate(ranges):
        if lo != edge or (hi is None) != (i == len(ranges) - 1):
            raise InvalidArgumentError(
                "`config` tile classes must cover every row count m >= 1 exactly once, the last with "
                f"max_rows=None (got (min_rows, max_rows] ranges {[(c.min_rows, c.max_rows) for c in classes]})"
            )
        edge = hi
    return classes


@functools.lru_cache(maxsize=4096)
def choose_tile_classes(
    total_rows: int,
    num_experts: int,
    n: int,
    k: int,
    dtype: str = "bf16",
    activation: str | None = None,
    gather: bool = False,
    num_sms: int = DEFAULT_NUM_SMS,
    num_tokens: int | None = None,
    tiled_w: bool = False,
) -> tuple[TileClass, ...]:
    """The heuristic's tile classes: :func:`choose_config`'s configuration for the experts of
    about the average size, and taller tiles for the experts that routing makes hot.

    Same arguments as :func:`choose_config`, plus ``num_tokens`` (T; default ``total_rows``):
    with distinct expert ids per token no expert gets more than T rows, so a class no expert
    can reach is left out. With ``USE_TILE_CLASSES``, at least ``TILE_CLASSES_MIN_TOKENS``
    tokens and swap mode for the average expert, experts of more than ``SWAP_MAX_ROWS`` rows
    get 64-row ping-pong tiles (the configuration choose_config gives experts of that size).
    With ``USE_FITTED_CLASS``, from ``FITTED_CLASS_MIN_TOKENS`` to ``TILE_CLASSES_MIN_TOKENS``
    tokens, with swap tiles of at most ``FITTED_CLASS_MIN_ROWS`` tokens for the average expert
    and weights of at least ``FITTED_CLASS_MIN_WEIGHT`` elements per expert, experts of more
    than ``FITTED_CLASS_MIN_ROWS`` rows get fitted 128-token swap tiles (see
    :func:`is_fitted`). Where choose_config itself picks fitted tiles there is one class.
    With ``USE_HOT_TALL_CLASS``, from ``HOT_TALL_MIN_TOKENS`` tokens, where choose_config picks
    64-row ping-pong tiles and the weight has at least ``HOT_TALL_MIN_WEIGHT`` elements per
    expert, experts of more than ``PINGPONG_MAX_ROWS`` rows get 128-row clustered tiles; there,
    with ``USE_FITTED_WIDE`` and a busy expert estimated at most ``FITTED_WIDE_MAX_ROWS`` rows,
    the experts of at most ``FITTED_WIDE_SPLIT[0]`` rows get fitted ``FITTED_WIDE``-token swap
    tiles (three classes: 128-row, 64-row ping-pong, fitted). With ``tiled_w`` (the weight is a
    tiled one, :func:`tile_weight`) and ``USE_TILED_TALL``, where the hot class would be the 128 x
    192 ping-pong cluster and the mean active expert has at least ``TILED_TALL_MIN_ROWS`` rows,
    every expert gets that 128-row class instead; where the hot class comes with fitted tiles,
    the 128-row class takes every expert above them (no ping-pong class between). The returned
    configurations carry ``tiled_w``.

    On the H200 (2026-11-28, ``dev/ab_pp.py``, both GEMMs of a layer): skewed routing
    DeepSeek-V3 T = 1024 6.64 -> 5.79 ms, T = 512 5.58 -> 5.23 ms, GPT-OSS-120B T = 1024 1.92 ->
    1.77 ms; uniform routing within 1 % (the extra launch finds no tiles). Ping-pong tiles for
    every expert instead were 4-5 % slower at uniform routing (24 % at Qwen3-30B T = 512). A
    class of 128-row clustered tiles for experts of more than 320 rows over a ping-pong average
    was slower at four of seven skewed points (Mixtral-8x7B T = 1024: 1.39 -> 1.55 ms,
    Qwen3-30B T = 1024 0.44 -> 0.49 ms) and is not used.

    Returns the classes heaviest first (the launch order). A pure function of its arguments.
    """
    return with_layout(_choose_tile_classes(total_rows, num_experts, n, k, dtype, activation, gather, num_sms,
                                            num_tokens, tiled_w), tiled_w)


@functools.lru_cache(maxsize=256)
def with_layout(classes: tuple[TileClass, ...], tiled: bool) -> tuple[TileClass, ...]:
    """``classes`` with ``tiled_w`` set to the weight's layout, which decides how the kernel loads
    it whatever a configuration says; cached, as rebuilding (and re-validating) the configs
    would cost every grouped_gemm call host time."""
    return tuple(c if c.config.tiled_w == tiled else
                 dataclasses.replace(c, config=dataclasses.replace(c.config, tiled_w=tiled)) for c in classes)


def _choose_tile_classes(total_rows: int, num_experts: int, n: int, k: int, dtype: str, activation: str | None,
                         gather: bool, num_sms: int, num_tokens: int | None, tiled_w: bool) -> tuple[TileClass, ...]:
    """:func:`choose_tile_classes` before the configurations are given the weight's layout."""
    base = choose_config(total_rows, num_experts, n, k, dtype, activation, gather, num_sms)
    tokens = total_rows if num_tokens is None else num_tokens
    if (USE_TILED_TALL and tiled_w and not base.swap_ab and base.block_m == 64 and tokens >= HOT_TALL_MIN_TOKENS
            and k <= PINGPONG128_MAX_K and _rows_estimate(total_rows, num_experts)[1] >= TILED_TALL_MIN_ROWS):
        tall = _prefill_config(128, base.block_n, activation, dtype, gather, k)
        if tall.cluster > 1 and tall.pingpong:
            return (TileClass(tall),)
    if (USE_FITTED_CLASS and FITTED_CLASS_MIN_TOKENS <= tokens < TILE_CLASSES_MIN_TOKENS and base.swap_ab
            and not is_fitted(base) and base.block_m <= FITTED_CLASS_MIN_ROWS and n * k >= FITTED_CLASS_MIN_WEIGHT):
        hot = fitted_config(128, activation, dtype, gather)
        return (TileClass(hot, FITTED_CLASS_MIN_ROWS, None), TileClass(base, 0, FITTED_CLASS_MIN_ROWS))
    if (USE_HOT_TALL_CLASS and not base.swap_ab and base.block_m == 64 and tokens >= HOT_TALL_MIN_TOKENS
            and n * k >= HOT_TALL_MIN_WEIGHT):
        hot = _prefill_config(128, base.block_n, activation, dtype, gather, k)
        wide = USE_FITTED_WIDE and _rows_estimate(total_rows, num_experts)[2] <= FITTED_WIDE_MAX_ROWS
        lo, hi = FITTED_WIDE_SPLIT if wide else (0, PINGPONG_MAX_ROWS)
        if wide and tiled_w and USE_TILED_TALL:  # tiled weights: no 64-row ping-pong class between
            hi = lo
        mid = (TileClass(base, lo, hi),) if hi > lo else ()
        fitted = (TileClass(fitted_config(FITTED_WIDE, activation, dtype, gather), 0, lo),) if lo > 0 else ()
        return (TileClass(hot, hi, None),) + mid + fitted
    if (not USE_TILE_CLASSES or tokens < TILE_CLASSES_MIN_TOKENS or not base.swap_ab or is_fitted(base)
            or tokens <= SWAP_MAX_ROWS):
        return (TileClass(base),)
    # The class's wave count is unknown (its rows are): the width that pads N least.
    hot = _prefill_config(64, _wide_tile(n), activation, dtype, gather, k)
    return (TileClass(hot, SWAP_MAX_ROWS, None), TileClass(base, 0, SWAP_MAX_ROWS))


#: Let grouped_mlp (and the layer) run both GEMMs of a weight-streaming layer in one launch
#: (grouped_mlp.cuh) where choose_mlp_config finds a common swap-mode tile. Off: on the H200
#: (2026-11-28, benchmarks/results/dev_mlp_check.json, the five model shapes at T = 1, 4, 16, 128,
#: L2 flushed) the one launch, with its best width and ring depth per point, was 1-10 % slower
#: than the two launches at all 20 points (Qwen3-30B-A3B T = 1 34.6 against 33.9 us, GPT-OSS-120B
#: T = 1 70.1 against 65.7 us, DeepSeek-V3 T = 128 5.39 against 5.16 ms), with bit-identical
#: outputs; reachable through ``grouped_mlp(config=...)``.
USE_GROUPED_MLP = False


@functools.lru_cache(maxsize=1024)
def choose_mlp_config(
    total_rows: int,
    num_experts: int,
    hidden: int,
    inter: int,
    dtype: str = "bf16",
    num_sms: int = DEFAULT_NUM_SMS,
    num_tokens: int | None = None,
) -> GemmConfig | None:
    """The tile of the one-launch expert MLP (:func:`mlp_kernel_source`), or None for two launches.

    One launch where :func:`choose_tile_classes` gives each GEMM of the layer (gate/up: ``n = 2 *
    inter``, ``k = hidden``; down: ``n = hidden``, ``k = inter``) a single swap-mode class without
    split-K: the weight-streaming regime. The tile takes the taller of the two ``block_m`` and the
    width (128 or 64) whose tiles of both GEMMs fill the last wave best (ties to 128). A pure
    function of its arguments.
    """
    if not USE_GROUPED_MLP:
        return None
    up = choose_tile_classes(total_rows, num_experts, 2 * inter, hidden, dtype, "silu_and_mul", True, num_sms,
                             num_tokens)
    down = choose_tile_classes(total_rows, num_experts, hidden, inter, dtype, None, False, num_sms, num_tokens)
    if len(up) != 1 or len(down) != 1:
        return None
    a, b = up[0].config, down[0].config
    if not (a.swap_ab and b.swap_ab and a.split_k == 1 and b.split_k == 1):
        return None
    block_m = max(a.block_m, b.block_m)
    active, avg_m, _ = _rows_estimate(total_rows, num_experts)
    m_tiles = active * math.ceil(avg_m / block_m)

    def fill(bn: int) -> float:
        return _wave_efficiency(m_tiles * (math.ceil(2 * inter / bn) + math.ceil(hidden / bn)), num_sms)

    block_n = 128 if fill(128) >= fill(64) - 0.02 else 64
    return _swap_config(block_m, block_n, "silu_and_mul", dtype, True)


def candidate_configs(
    total_rows: int,
    num_experts: int,
    n: int,
    k: int,
    dtype: str = "bf16",
    activation: str | None = None,
    gather: bool = False,
    num_sms: int = DEFAULT_NUM_SMS,
) -> list[GemmConfig]:
    """A short list (at most 8) of sensible configurations for a shape, for sweeps.

    Same arguments as :func:`choose_config`; the first entry is always its choice, the rest
    are neighbours worth timing: for fitted swap tiles the other fitted size, the 64-token swap
    tile and 64-row ping-pong tiles; in normal mode the same tiles with and without a 2-CTA
    cluster, without store warps where it chose them, in the other tile order (static or dynamic) for 128-row
    cooperative tiles, the cooperative tile that 128-row ping-pong tiles replaced (``USE_PINGPONG128``),
    the 192-row cooperative tile in a cluster (:func:`triple_config`) and, with gather, the other of the cp.async and staged gathers; in swap mode other
    split-K factors (none, half and double the chosen one, or 2 and 4 when it chose none, where K allows), the next token-block sizes and
    the other weight width; in normal mode 256 x 128 (tall tiles), 128 x 256, 128 x 128, and
    64-row tiles with and without ping-pong. A pure function of its arguments; no duplicates.
    """
    first = choose_config(total_rows, num_experts, n, k, dtype, activation, gather, num_sms)
    _, _, m_est = _rows_estimate(total_rows, num_experts)
    kw: dict = dict(activation=activation, dtype=dtype, gather=gather)
    cands = [first]
    if is_fitted(first):  # the other fitted size, the largest plain swap tile, 64-row ping-pong tiles
        cands.append(fitted_config(256 if first.block_m == 128 else 128, **kw))
        cands.append(_swap_config(64, 128, **kw))
        cands.append(_prefill_config(64, _wide_tile(n), activation, dtype, gather, k))
        cands.append(_normal_config(64, 128, True, **kw))
    elif first.swap_ab:
        sizes = (8, 16, 32, 48, 64)
        i = sizes.index(first.block_m)
        other_n = 64 if first.block_n == 128 else 128
        k_steps = -(-k // _BLOCK_K)
        s = first.split_k
        for split in ((1, s // 2, 2 * s) if s > 1 else (2, 4)):
            if 1 <= split <= MAX_SPLIT_K and (split == 1 or k_steps >= split * SPLIT_K_MIN_STEPS):
                cands.append(_swap_config(first.block_m, first.block_n, split_k=split, **kw))
        cands.append(_swap_config(first.block_m, other_n, **kw))
        if i + 1 < len(sizes):
            cands.append(_swap_config(sizes[i + 1], first.block_n, **kw))
        if i > 0:
            cands.append(_swap_config(sizes[i - 1], first.block_n, **kw))
        if m_est > 32:  # the normal mode's smallest tile competes near the top of swap mode
            cands.append(_normal_config(64, 128, True, **kw))
            cands.append(_normal_config(64, 256, True, **kw))
    else:
        if first.block_m != 256 and (not gather or first.gather_mode == "staged"):  # with and without a cluster
            cands.append(dataclasses.replace(first, cluster=3 - first.cluster))
        if first.store_warps:  # the same tiles with the consumers storing their own output
            cands.append(without_store_warps(first))
        if first.block_m == 128 and not first.pingpong and (not gather or first.gather_mode == "staged"):
            cands.append(dataclasses.replace(first, dynamic=not first.dynamic))  # the other tile order
        if first.block_m == 128 and first.pingpong and first.cluster > 1:  # USE_PINGPONG128's cooperative tile
            cands.append(_prefill_config(128, _wide_tile(n), activation, dtype, gather, k, pingpong128=False))
        if first.block_m in (64, 128) and (not gather or first.gather_mode == "staged"):  # 192-row tiles
            cands.append(triple_config(first.block_n, activation, dtype, gather))
        if gather:  # the other gather method of the same tiles
            other = "cp_async" if first.gather_mode == "staged" else "staged"
            cands.append(first.with_gather_mode(other))
        cands += [
            _normal_config(256, 128, False, **kw),
            _normal_config(128, 256, False, **kw),
            _normal_config(64, 256, True, **kw),
            _normal_config(128, 128, False, **kw),
            _normal_config(64, 128, True, **kw),
            _normal_config(64, 256, False, **kw),
        ]
    out: list[GemmConfig] = []
    for c in cands:
        if c not in out:
            out.append(c)
    return out[:8]


def _wide_tile(n: int, waves=lambda block_n: 1.0) -> int:  # type: ignore[no-untyped-def]
    """The wide normal-mode tile for ``n`` weight rows: 256, or 192 where that pads N clearly
    less (``_fill`` times ``waves(block_n)``, the wave efficiency where it is known; 1 % in
    favour of 256)."""
    return max((256, 192), key=lambda bn: _fill(n, bn) * waves(bn) * (1.0 if bn == 256 else 0.99))


def _fill(n: int, block_n: int) -> float:
    """Fraction of the computed weight rows that exist: ``n`` over ``n`` rounded up to ``block_n``."""
    return n / (math.ceil(n / block_n) * block_n)


def _wave_efficiency(tiles: int, num_sms: int) -> float:
    """Fraction of the SM-waves that ``tiles`` equal tiles keep busy."""
    if tiles <= 0:
        return 0.0
    return tiles / (math.ceil(tiles / num_sms) * num_sms)


def check_problem(n: int, k: int, lda: int, activation: str | None) -> None:
    """Raise :class:`staticbatch.InvalidArgumentError` if the kernel cannot run this shape.

    Parameters
    ----------
    n : int
        Weight rows per expert.
    k : int
        Reduction size.
    lda : int
        Row stride of ``a`` in elements.
    activation : str or None
        ``None`` or ``"silu_and_mul"``.
    """
    if k < 8 or k % 8:
        raise InvalidArgumentError(f"`k` must be a positive multiple of 8 (got {k})")
    if lda < k or lda % 8:
        raise InvalidArgumentError(f"`lda` must be a multiple of 8 and at least k={k} (got {lda})")
    n_align = 16 if activation == "silu_and_mul" else 8
    if n < n_align or n % n_align:
        raise InvalidArgumentError(f"`n` must be a positive multiple of {n_align} (got {n})")


def interleave_gate_up(w1: torch.Tensor) -> torch.Tensor:
    """Reorder a ``[gate; up]`` weight into the kernel's interleaved ``silu_and_mul`` layout.

    Parameters
    ----------
    w1 : torch.Tensor
        ``[E, 2I, K]`` (any dtype, any device): rows ``0:I`` are the gate projection, rows
        ``I:2I`` the up projection (vLLM's ``w13`` layout). ``I`` must be a multiple of 8.

    Returns
    -------
    torch.Tensor
        ``[E, 2I, K]`` contiguous, same dtype and device, rows ordered
        ``[gate 0:8, up 0:8, gate 8:16, up 8:16, ...]``. Do this once, at load time.
    """
    if w1.dim() != 3 or w1.shape[1] % (2 * GATE_UP_GROUP):
        raise InvalidArgumentError(f"`w1` must be [E, 2I, K] with I a multiple of 8 (got shape {tuple(w1.shape)})")
    e, two_i, k = w1.shape
    i = two_i // 2
    g = w1[:, :i].reshape(e, i // GATE_UP_GROUP, 1, GATE_UP_GROUP, k)
    u = w1[:, i:].reshape(e, i // GATE_UP_GROUP, 1, GATE_UP_GROUP, k)
    import torch

    return torch.cat([g, u], dim=2).reshape(e, two_i, k).contiguous()


def deinterleave_gate_up(w: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`interleave_gate_up`: ``[E, 2I, K]`` interleaved -> ``[gate; up]``."""
    if w.dim() != 3 or w.shape[1] % (2 * GATE_UP_GROUP):
        raise InvalidArgumentError(f"`w` must be [E, 2I, K] with I a multiple of 8 (got shape {tuple(w.shape)})")
    e, two_i, k = w.shape
    i = two_i // 2
    v = w.reshape(e, i // GATE_UP_GROUP, 2, GATE_UP_GROUP, k)
    import torch

    return torch.cat([v[:, :, 0].reshape(e, i, k), v[:, :, 1].reshape(e, i, k)], dim=1).contiguous()


def tile_weight(w: torch.Tensor) -> torch.Tensor:
    """Store ``w`` ``[E, N, K]`` as the kernels' tiled weight (``GemmConfig.tiled_w``).

    Returns ``[E, ceil(N / 64), ceil(K / 64), 64, 64]``, contiguous, same dtype and device: block
    ``[e, nb, kb]`` holds rows ``64 nb ..`` and columns ``64 kb ..`` of ``w[e]`` (zeros past N and
    K), each 128-byte row of it with its 16-byte chunk c stored at chunk ``c ^ (row % 8)``: the
    order the 128-byte shared-memory swizzle gives it, so a plain 1-D copy lands it where the
    tensor cores read it. Each block's k-blocks are consecutive. Needs 2-byte elements."""
    import torch

    if w.dim() != 3 or w.element_size() != 2:
        raise InvalidArgumentError(
            f"`w` must be a [E, N, K] tensor of 2-byte elements (got shape {tuple(w.shape)}, {w.dtype})"
        )
    e, n, k = w.shape
    nb, kb = -(-n // TILE), -(-k // TILE)
    out = torch.empty(e, nb, kb, TILE, TILE, dtype=w.dtype, device=w.device)
    for lo, hi in _expert_chunks(e, nb * kb):
        padded = torch.zeros(hi - lo, nb * TILE, kb * TILE, dtype=w.dtype, device=w.device)
        padded[:, :n, :k] = w[lo:hi]
        out[lo:hi] = _swap_chunks(padded.view(hi - lo, nb, TILE, kb, TILE).permute(0, 1, 3, 2, 4))
    return out


def untile_weight(tiles: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """Inverse of :func:`tile_weight`: ``[E, N, K]`` from the tiled weight of an ``N x K`` one."""
    import torch

    e, nb, kb, _, _ = tiles.shape
    out = torch.empty(e, n, k, dtype=tiles.dtype, device=tiles.device)
    for lo, hi in _expert_chunks(e, nb * kb):
        full = _swap_chunks(tiles[lo:hi]).permute(0, 1, 3, 2, 4).reshape(hi - lo, nb * TILE, kb * TILE)
        out[lo:hi] = full[:, :n, :k]
    return out


#: Bytes of tiled blocks that tile_weight / untile_weight handle at a time.
TILING_CHUNK_BYTES = 256 << 20


def _expert_chunks(e: int, blocks_per_expert: int) -> list[tuple[int, int]]:
    """Expert ranges of about TILING_CHUNK_BYTES of blocks each: (un)tiling a whole model's
    weight at once would need several times its size in temporaries."""
    step = max(1, TILING_CHUNK_BYTES // (blocks_per_expert * TILE * TILE * 2))
    return [(lo, min(lo + step, e)) for lo in range(0, e, step)]


def _swap_chunks(blocks: torch.Tensor) -> torch.Tensor:
    """``[E, nb, kb, 64, 64]`` blocks with the 16-byte chunk j of row i of each block moved to
    ``j ^ (i % 8)``, contiguous. The permutation is its own inverse: it swizzles and unswizzles."""
    import torch

    e, nb, kb, _, _ = blocks.shape
    rows = torch.arange(TILE, device=blocks.device).view(TILE, 1)
    src = (torch.arange(8, device=blocks.device).view(1, 8) ^ (rows % 8)).view(1, 1, 1, TILE, 8, 1)
    chunks = blocks.reshape(e, nb, kb, TILE, 8, 8)
    return torch.gather(chunks, 4, src.expand(chunks.shape)).reshape(e, nb, kb, TILE, TILE)


def weight_tma_descriptor(w: torch.Tensor, cfg: GemmConfig) -> bytes:
    """The 128-byte TMA descriptor (CUtensorMap) of the weight for one configuration.

    Parameters
    ----------
    w : torch.Tensor
        ``[E, N, K]`` contiguous, bf16 or fp16 (matching ``cfg.dtype``), cuda, 16-byte aligned,
        ``K % 8 == 0``. Interleaved (:func:`interleave_gate_up`) when ``cfg.activation`` is
        ``"silu_and_mul"``.
    cfg : GemmConfig
        Sets the box: ``{64, cfg.block_n / cfg.cluster, 1}`` elements over the view ``{K, N, E}``
        (a 2-CTA cluster loads a weight tile as two halves),
        128-byte swizzle, out-of-bounds elements read as zero.

    Returns
    -------
    bytes
        The raw descriptor, to be passed by value (64-byte aligned) as ``w_map``. It holds
        ``w``'s address: rebuild it if the weight moves.
    """
    import torch

    want = torch.bfloat16 if cfg.dtype == "bf16" else torch.float16
    if cfg.tiled_w:  # no tensor map: {address, 64-row blocks per expert}, the rest zero (grouped_gemm.cuh)
        if (w.dim() != 5 or tuple(w.shape[3:]) != (TILE, TILE) or w.dtype != want or not w.is_contiguous()
                or w.data_ptr() % 16):
            raise InvalidArgumentError(
                f"`w` must be a contiguous, 16-byte aligned tiled weight [E, N / 64, K / 64, 64, 64] of {want} "
                f"with tiled_w=True (got shape {tuple(w.shape)}, {w.dtype}, contiguous={w.is_contiguous()})"
            )
        return struct.pack("<16Q", w.data_ptr(), w.shape[1], *([0] * 14))
    if w.dim() != 3 or w.dtype != want or not w.is_contiguous():
        raise InvalidArgumentError(
            f"`w` must be a contiguous [E, N, K] {want} tensor (got shape {tuple(w.shape)}, {w.dtype}, "
            f"contiguous={w.is_contiguous()})"
        )
    e, n, k = w.shape
    if k % 8 or w.data_ptr() % 16:
        raise InvalidArgumentError(f"`w` must have K % 8 == 0 and a 16-byte aligned address (got K={k})")
    return sb.tensor_map(w, [k, n, e], [k * 2, n * k * 2], [_BLOCK_K, cfg.block_n // cfg.cluster, 1], name="w")


def token_tma_descriptor(a: torch.Tensor, cfg: GemmConfig) -> bytes:
    """The 128-byte TMA descriptor (CUtensorMap) of the token rows ``a``, the kernel's ``a_map``.

    Parameters
    ----------
    a : torch.Tensor
        ``[rows, K]`` bf16 or fp16 (matching ``cfg.dtype``), cuda, unit stride along K, row
        stride ``lda = a.stride(0)`` a multiple of 8, 16-byte aligned address, fewer than
        2**31 rows, ``K % 8 == 0``. With ``gather`` the rows are the T tokens that
        ``gather_idx`` indexes (``gather_mode="tma"``), the staged workspace of grouped rows
        (``"staged"``); ignored with ``"cp_async"``.
    cfg : GemmConfig
        Sets the box over the view ``{K, rows}``: ``{64, cfg.block_m}`` elements without
        ``gather`` (``{64, 64}`` for ``block_m=256`` and 128-row ping-pong tiles: one box per
        64-row slice that holds rows of the task; also the staged gather's workspace), ``{64, 1}`` (one token row) with
        the TMA gather; 128-byte swizzle,
        out-of-bounds rows and columns read as zero.

    Returns
    -------
    bytes
        The raw descriptor, passed by value (64-byte aligned) as ``a_map``; 128 zero bytes
        with the cp.async gather (the kernel does not read it then). It holds ``a``'s address
        and row count: rebuild it whenever ``a`` changes.
    """
    if cfg.gather and cfg.gather_mode == "cp_async":
        return bytes(128)
    import torch

    want = torch.bfloat16 if cfg.dtype == "bf16" else torch.float16
    if a.dim() != 2 or a.dtype != want or a.stride(1) != 1:
        raise InvalidArgumentError(
            f"`a` must be a [rows, K] {want} tensor with unit stride along K (got shape {tuple(a.shape)}, "
            f"{a.dtype}, strides {a.stride()})"
        )
    rows, k = a.shape
    lda = a.stride(0) if rows > 1 else max(k, 8 * -(-k // 8))
    if k % 8 or lda % 8 or lda < k or a.data_ptr() % 16 or rows < 1 or rows >= 2**31:
        raise InvalidArgumentError(
            f"`a` must have K % 8 == 0, a row stride that is a multiple of 8, a 16-byte aligned address and "
            f"1 <= rows < 2**31 (got shape {tuple(a.shape)}, stride {a.stride(0)})"
        )
    box_rows = 1 if cfg.gather and cfg.gather_mode == "tma" else _token_box_rows(cfg)
    return sb.tensor_map(a, [k, rows], [lda * 2], [_BLOCK_K, box_rows], name="a")
