"""Routing plans: which rows each expert owns, built on the device with no host sync.

A :class:`RoutePlan` is the MoE form of a staticbatch plan. Tasks are experts; a task's size
is (rows routed to the expert, output columns). The grouped layout puts expert 0's rows
first, then expert 1's, ..., each in token order; tasks are *scheduled* heaviest first (the
kernel's task list is sorted by row count, descending), so that a hot expert's tiles start
in the first wave instead of forming a tail.

On a Hopper GPU the plan comes from three small kernels (count, scan, scatter) that also
build the tile prefix sums of a layer's two GEMMs; elsewhere from torch operations (a stable
sort, a scatter-add, prefix sums). Neither syncs with the host, so routing, plan and GEMMs
can be captured in a CUDA graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import staticbatch as sb
from staticbatch_moe import _route_kernels as rk

__all__ = ["RoutePlan", "route_plan"]


@dataclass(frozen=True, eq=False)
class RoutePlan:
    """Which rows each expert owns, and the schedule of its tiles.

    Attributes
    ----------
    num_tokens, top_k, num_experts : int
    expert_counts : torch.Tensor
        int32 ``[E]``: rows routed to each expert (ids outside ``[0, E)``, e.g. ``-1`` for
        "not on this rank", are not counted).
    expert_starts : torch.Tensor
        int64 ``[E + 1]``: first grouped row of each expert; ``expert_starts[E]`` is the
        number of valid rows M (<= T * k). Grouped rows ``[M, T * k)`` are never written.
    gather_idx : torch.Tensor
        int32 ``[T * k]``: the input token of each grouped row.
    slot_to_row : torch.Tensor
        int32 ``[T, k]``: the grouped row of each (token, slot), ``-1`` where the id was
        skipped. The combine reads it.
    task_expert, task_rows, task_starts : torch.Tensor
        The kernel's task list, heaviest first: int32 ``[E]`` expert ids, int32 ``[E]`` rows,
        int64 ``[E + 1]`` first grouped row of each task (the last entry is M).
    """

    num_tokens: int
    top_k: int
    num_experts: int
    expert_counts: Any
    expert_starts: Any
    gather_idx: Any
    slot_to_row: Any
    task_expert: Any
    task_rows: Any
    task_starts: Any
    _tile_plans: dict = field(default_factory=dict, repr=False)

    @property
    def num_rows(self) -> int:
        """Rows of the grouped layout, T * k (the valid ones are the first ``expert_starts[E]``)."""
        return self.num_tokens * self.top_k

    @property
    def device(self) -> Any:
        return self.expert_counts.device

    def tile_offsets(
        self, block_m: int, block_n: int, n: int, split_k: int = 1, rows: tuple[int, int | None] = (0, None)
    ) -> Any:
        """int32 ``[E + 1]``: exclusive prefix sum over tasks of
        ceil(m / block_m) * ceil(n / block_n) * split_k.

        Built on the device, with no sync, and kept, so the two GEMMs of a layer and repeated
        calls share it. :func:`route_plan` can build up to four in its own pass (``tilings``);
        any other comes from a :func:`staticbatch.device_plan` launch (and, with a row range,
        a few torch operations before it). With
        ``split_k > 1`` every output tile counts ``split_k`` times (one tile per K slice).
        ``rows=(lo, hi)`` counts only the tasks with ``lo < m <= hi`` (``hi=None``: no upper
        bound); the others get no tiles (one class of a call with tile classes, see
        :class:`staticbatch_moe.TileClass`).
        """
        key = _tile_key(block_m, block_n, n, split_k, rows)
        offsets = self._tile_plans.get(key)
        if offsets is None:
            import torch

            m = self.task_rows
            if len(key) > 2:
                lo, hi = key[2:]
                keep = m > lo if hi is None else (m > lo) & (m <= hi)
                m = torch.where(keep, m, torch.zeros_like(m))
            sizes = torch.stack([m, torch.full_like(m, key[1])], dim=1)
            offsets = sb.device_plan(sizes, (block_m, 1)).tile_offsets
            self._tile_plans[key] = offsets
        return offsets

    def has_tile_offsets(
        self, block_m: int, block_n: int, n: int, split_k: int = 1, rows: tuple[int, int | None] = (0, None)
    ) -> bool:
        """Whether :meth:`tile_offsets` with these arguments is built already (then it launches nothing)."""
        return _tile_key(block_m, block_n, n, split_k, rows) in self._tile_plans


def _tile_key(block_m: int, block_n: int, n: int, split_k: int = 1, rows: tuple[int, int | None] = (0, None)) -> tuple:
    """The cache key of a tile prefix sum: (block_m, tiles per token block) and the row range if any."""
    key: tuple = (block_m, -(-n // block_n) * split_k)
    return key if tuple(rows) == (0, None) else key + tuple(rows)


def _check_ids(topk_ids: Any, num_experts: Any) -> None:
    import torch

    if isinstance(num_experts, bool) or not isinstance(num_experts, int) or not 1 <= num_experts <= 2**20:
        raise sb.InvalidArgumentError(f"`num_experts` must be an int between 1 and {2**20} (got {num_experts!r})")
    if not isinstance(topk_ids, torch.Tensor):
        raise sb.InvalidArgumentError(f"`topk_ids` must be a torch.Tensor (got {type(topk_ids).__name__})")
    if topk_ids.dtype not in (torch.int32, torch.int64):
        raise sb.InvalidArgumentError(f"`topk_ids` must have dtype torch.int32 or torch.int64 (got {topk_ids.dtype})")
    if topk_ids.dim() != 2:
        raise sb.InvalidArgumentError(f"`topk_ids` must have shape [num_tokens, top_k] (got {list(topk_ids.shape)})")
    if topk_ids.shape[1] < 1:
        raise sb.InvalidArgumentError(f"`topk_ids` must have top_k >= 1 columns (got {topk_ids.shape[1]})")
    if topk_ids.numel() >= 2**31:
        raise sb.InvalidArgumentError(f"`topk_ids` must have fewer than 2**31 entries (got {topk_ids.numel()})")


def route_plan(topk_ids: Any, num_experts: int, *, tilings: Any = ()) -> RoutePlan:
    """Group (token, slot) pairs by expert.

    Parameters
    ----------
    topk_ids : torch.Tensor
        int32 or int64 ``[T, k]``, cuda or cpu: the expert of each token's k slots.
        ``-1`` means "not on this rank" and is skipped by design. Other ids outside
        ``[0, num_experts)`` are an error on the CPU; on the GPU they are skipped too (their
        rows are never written), since checking would cost a host sync.
    num_experts : int
        E, the number of (local) experts.
    tilings : sequence of (block_m, block_n, n[, split_k[, rows]]), optional
        Up to four GEMM tilings (the arguments of :meth:`RoutePlan.tile_offsets`, ``rows`` a
        ``(lo, hi)`` row range of a tile class) whose tile prefix sums are built in the same
        pass on a Hopper GPU (``fused_moe`` passes the tile classes of its two GEMMs); others
        are built on first use.

    Returns
    -------
    RoutePlan

    Notes
    -----
    On a Hopper GPU with E <= 1024 the plan comes from three small kernels (count, scan,
    scatter; ``cuda_src/staticbatch/moe/routing.cuh``); elsewhere from torch operations (a
    stable sort, a scatter-add, prefix sums). Both give the same layout: rows grouped by
    expert, each expert's rows in (token, slot) order, tasks heaviest first (ties by expert id).
    """
    _check_ids(topk_ids, num_experts)
    tilings = list(tilings)
    if len(tilings) > rk.PLAN_TILINGS:
        raise sb.InvalidArgumentError(
            f"`tilings` must list at most {rk.PLAN_TILINGS} (block_m, block_n, n[, split_k[, rows]]) (got {len(tilings)})"
        )
    t, k = topk_ids.shape
    if t * k and num_experts <= rk.MAX_EXPERTS and rk.available(topk_ids):
        keys = list(dict.fromkeys(_tile_key(*tl) for tl in tilings))
        got = rk.plan(topk_ids, num_experts, keys)
        offsets = got.pop("tile_offsets")
        return RoutePlan(num_tokens=t, top_k=k, num_experts=num_experts, _tile_plans=dict(zip(keys, offsets)), **got)
    return _route_plan_torch(topk_ids, num_experts)


def _route_plan_torch(topk_ids: Any, num_experts: int) -> RoutePlan:
    import torch

    t, k = topk_ids.shape
    dev = topk_ids.device
    ids = topk_ids.reshape(-1).long()
    if dev.type == "cpu" and ids.numel():
        bad = (ids < -1) | (ids >= num_experts)
        if bool(bad.any()):
            where = int(bad.nonzero()[0, 0])
            raise sb.InvalidArgumentError(
                f"`topk_ids` must hold expert ids in [0, {num_experts}) or -1 (got {int(ids[where])} at token "
                f"{where // k}, slot {where % k})"
            )
    e = num_experts
    valid = (ids >= 0) & (ids < e)
    bucket = torch.where(valid, ids, torch.full_like(ids, e))
    counts = torch.zeros(e + 1, dtype=torch.int64, device=dev).scatter_add_(0, bucket, torch.ones_like(bucket))
    counts = counts[:e]
    starts = torch.zeros(e + 1, dtype=torch.int64, device=dev)
    torch.cumsum(counts, 0, out=starts[1:])
    # Stable: rows of one expert stay in (token, slot) order, so the layout is deterministic.
    order = torch.sort(bucket, stable=True).indices
    gather_idx = (order // k).to(torch.int32)
    rows = torch.empty(t * k, dtype=torch.int64, device=dev)
    rows[order] = torch.arange(t * k, dtype=torch.int64, device=dev)
    slot_to_row = torch.where(valid, rows, torch.full_like(rows, -1)).to(torch.int32).reshape(t, k)
    # Heaviest first; ties by expert id (stable), so the schedule is deterministic too.
    task_expert = torch.sort(counts, descending=True, stable=True).indices
    task_starts = torch.zeros(e + 1, dtype=torch.int64, device=dev)
    task_starts[:e] = starts[task_expert]
    task_starts[e] = starts[e]
    return RoutePlan(
        num_tokens=t,
        top_k=k,
        num_experts=e,
        expert_counts=counts.to(torch.int32),
        expert_starts=starts,
        gather_idx=gather_idx,
        slot_to_row=slot_to_row,
        task_expert=task_expert.to(torch.int32),
        task_rows=counts[task_expert].to(torch.int32),
        task_starts=task_starts,
    )
