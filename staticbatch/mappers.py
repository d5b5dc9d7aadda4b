"""Mappers from a global tile id to (task, tile within the task), and their Python twins.

The device code lives in ``cuda_src/staticbatch/mapper.cuh``. Each mapper here has a Python
twin that follows the device algorithm step by step (the binary search's loop; the warp
scan's ballots and popcounts), so tests can compare the device bitwise with the twin and the
twin with brute force.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from staticbatch.errors import InvalidArgumentError

__all__ = ["Mapper", "binary_search", "brute_force", "map_tiles", "warp_scan", "warp_search"]

_KINDS = ("binary_search", "warp_search", "warp_scan")


@dataclass(frozen=True)
class Mapper:
    """Which device mapper a kernel uses.

    Parameters
    ----------
    kind : {"binary_search", "warp_search", "warp_scan"}
        ``warp_search`` (default): a warp-cooperative 32-ary search over the prefix sums,
        log32(#tasks) + 1 coalesced loads and ballots, any number of tasks (1.5 to 4 times
        faster than the binary search on an H200: docs/performance.md). ``binary_search``:
        the method's mapper, log2(#tasks) dependent loads, any number of tasks.
        ``warp_scan``: each lane keeps ``slots`` task ends in registers and a tile is found
        with ``slots`` ballots; at most ``32 * slots`` tasks.
    slots : int
        Registers per lane for ``warp_scan`` (1 to 32).
    """

    kind: str = "warp_search"
    slots: int = 8

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise InvalidArgumentError(f"`mapper` must be one of {_KINDS} (got {self.kind!r})")
        if isinstance(self.slots, bool) or not isinstance(self.slots, int) or not 1 <= self.slots <= 32:
            raise InvalidArgumentError(f"`slots` must be an int between 1 and 32 (got {self.slots!r})")

    @staticmethod
    def of(mapper: Mapper | str) -> Mapper:
        if isinstance(mapper, Mapper):
            return mapper
        if isinstance(mapper, str):
            return Mapper(mapper)
        raise InvalidArgumentError(f"`mapper` must be a Mapper or one of {_KINDS} (got {mapper!r})")

    @property
    def max_tasks(self) -> int | None:
        """The most tasks this mapper can hold, or None for no limit."""
        return 32 * self.slots if self.kind == "warp_scan" else None

    @property
    def cpp_type(self) -> str:
        if self.kind == "warp_scan":
            return f"staticbatch::WarpScanMapper<{self.slots}>"
        if self.kind == "warp_search":
            return "staticbatch::WarpSearchMapper"
        return "staticbatch::BinarySearchMapper"

    @property
    def tag(self) -> str:
        return {"warp_scan": f"ws{self.slots}", "warp_search": "wsr", "binary_search": "bs"}[self.kind]

    def check_tasks(self, num_tasks: int) -> None:
        limit = self.max_tasks
        if limit is not None and num_tasks > limit:
            raise InvalidArgumentError(
                f"the warp_scan mapper with slots={self.slots} holds at most {limit} tasks (got a plan with "
                f"{num_tasks}); use Mapper('warp_scan', slots={min(32, -(-num_tasks // 32))}) or 'warp_search'"
            )

    def map(self, tile_offsets: Any, tile_id: int) -> tuple[int, int]:
        """The twin: (task, tile within task) for one tile id."""
        if self.kind == "warp_scan":
            return warp_scan(tile_offsets, tile_id, slots=self.slots)
        if self.kind == "warp_search":
            return warp_search(tile_offsets, tile_id)
        return binary_search(tile_offsets, tile_id)


def _total(offsets: np.ndarray, tile_id: int) -> None:
    total = int(offsets[-1])
    if not 0 <= tile_id < total:
        raise InvalidArgumentError(f"`tile_id` must be in [0, {total}) (got {tile_id})")


def binary_search(tile_offsets: Any, tile_id: int) -> tuple[int, int]:
    """Twin of ``BinarySearchMapper::map``: the last task i with offsets[i] <= tile_id."""
    offsets = np.asarray(tile_offsets)
    _total(offsets, tile_id)
    a, b = 0, len(offsets) - 2
    while a < b:
        mid = a + (b - a + 1) // 2
        if int(offsets[mid]) <= tile_id:
            a = mid
        else:
            b = mid - 1
    return a, tile_id - int(offsets[a])


def warp_search(tile_offsets: Any, tile_id: int) -> tuple[int, int]:
    """Twin of ``WarpSearchMapper::map``: 32 pivots per step, a ballot counts those at or
    before the tile, the range shrinks 32-fold; the last step compares 32 neighbours."""
    offsets = np.asarray(tile_offsets)
    _total(offsets, tile_id)
    int32_max = 2**31 - 1
    a, b = 0, len(offsets) - 2
    while b - a >= 32:
        stride = (b - a + 32) // 32
        ballot = 0
        for lane in range(32):
            idx = a + lane * stride
            if idx <= b and int(offsets[idx]) <= tile_id:
                ballot |= 1 << lane
        c = bin(ballot).count("1")
        a += (c - 1) * stride
        b = min(b, a + stride - 1)
    values = [int(offsets[a + lane]) if a + lane <= b else int32_max for lane in range(32)]
    c = sum(1 for v in values if v <= tile_id)
    start = values[c - 1]
    return a + c - 1, tile_id - start


def warp_scan(tile_offsets: Any, tile_id: int, *, slots: int = 8) -> tuple[int, int]:
    """Twin of ``WarpScanMapper<slots>::map``: lane l holds the ends of tasks l, 32 + l, ...;
    the task is the sum over slots of popc(ballot(end <= tile_id))."""
    offsets = np.asarray(tile_offsets)
    _total(offsets, tile_id)
    num_tasks = len(offsets) - 1
    Mapper("warp_scan", slots).check_tasks(num_tasks)
    task = 0
    for s in range(slots):
        ballot = 0
        for lane in range(32):
            t = s * 32 + lane
            end = int(offsets[t + 1]) if t < num_tasks else 2**31 - 1
            if end <= tile_id:
                ballot |= 1 << lane
        task += bin(ballot).count("1")
    return task, tile_id - int(offsets[task])


_CHUNK = 1 << 16


def _map_chunk(offsets: np.ndarray, tiles: np.ndarray, mapper: Mapper) -> np.ndarray:
    """The vectorised twins on a chunk of tile ids: each follows its device algorithm in lock step."""
    num_tasks = len(offsets) - 1
    total = len(tiles)
    if mapper.kind == "binary_search":
        a = np.zeros(total, dtype=np.int64)
        b = np.full(total, num_tasks - 1, dtype=np.int64)
        while True:
            active = a < b
            if not active.any():
                break
            mid = a + (b - a + 1) // 2
            go_right = active & (offsets[np.minimum(mid, num_tasks)] <= tiles)
            go_left = active & ~go_right
            a = np.where(go_right, mid, a)
            b = np.where(go_left, mid - 1, b)
        task = a
    elif mapper.kind == "warp_search":
        a = np.zeros(total, dtype=np.int64)
        b = np.full(total, num_tasks - 1, dtype=np.int64)
        lanes = np.arange(32, dtype=np.int64)
        while True:
            active = (b - a) >= 32
            if not active.any():
                break
            stride = (b - a + 32) // 32
            idx = a[:, None] + lanes[None, :] * stride[:, None]
            le = (idx <= b[:, None]) & (offsets[np.minimum(idx, num_tasks)] <= tiles[:, None])
            c = le.sum(axis=1)
            new_a = a + (c - 1) * stride
            a = np.where(active, new_a, a)
            b = np.where(active, np.minimum(b, new_a + stride - 1), b)
        idx = a[:, None] + lanes[None, :]
        le = (idx <= b[:, None]) & (offsets[np.minimum(idx, num_tasks)] <= tiles[:, None])
        task = a + le.sum(axis=1) - 1
    else:
        ends = np.full(32 * mapper.slots, 2**31 - 1, dtype=np.int64)
        ends[:num_tasks] = offsets[1:]
        task = np.zeros(total, dtype=np.int64)
        for s in range(mapper.slots):
            lane_ends = ends[s * 32 : (s + 1) * 32]
            task += (lane_ends[None, :] <= tiles[:, None]).sum(axis=1) if total else 0
    return task


def map_tiles(tile_offsets: Any, mapper: Mapper | str = "warp_search") -> np.ndarray:
    """The twin over every tile id at once: int32 ``[total, 2]`` of (task, index).

    Vectorised form of the same algorithms (the binary search runs its loop on all tile ids
    in lock step; the warp scan counts ends per slot).
    """
    mapper = Mapper.of(mapper)
    offsets = np.asarray(tile_offsets, dtype=np.int64)
    total = int(offsets[-1])
    num_tasks = len(offsets) - 1
    if mapper.kind == "warp_scan":
        mapper.check_tasks(num_tasks)
    task = np.empty(total, dtype=np.int64)
    for lo in range(0, total, _CHUNK):  # bounded memory for millions of tiles
        task[lo : lo + _CHUNK] = _map_chunk(offsets, np.arange(lo, min(total, lo + _CHUNK), dtype=np.int64), mapper)
    tiles = np.arange(total, dtype=np.int64)
    out = np.empty((total, 2), dtype=np.int32)
    out[:, 0] = task
    out[:, 1] = tiles - offsets[task] if total else 0
    return out


def brute_force(tile_offsets: Any) -> np.ndarray:
    """The per-tile table written out task by task: int32 ``[total, 2]`` of (task, index)."""
    offsets = np.asarray(tile_offsets, dtype=np.int64)
    rows = []
    for task in range(len(offsets) - 1):
        for index in range(int(offsets[task + 1] - offsets[task])):
            rows.append((task, index))
    return np.array(rows, dtype=np.int32).reshape(-1, 2)
