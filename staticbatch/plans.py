"""Plans: irregular tasks cut into uniform tiles, laid out as prefix sums.

A plan is O(#tasks) metadata: per task its size along each dimension, the exclusive prefix
sum of its tile counts (``tile_offsets``, int32 ``[num_tasks + 1]``) and the exclusive
prefix sum of its first dimension (``task_starts``, int64 ``[num_tasks + 1]``: where its rows
begin in a grouped layout). Never one entry per tile.

:func:`plan` builds a :class:`TilePlan` on the host from host sizes; it is pure and
deterministic. :func:`device_plan` builds a :class:`DevicePlan` on the GPU from sizes that
live on the GPU, with no host sync, so that the build and the kernels that consume it can be
captured in a CUDA graph and replayed with new sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from staticbatch.errors import InvalidArgumentError, PlanOverflowError

__all__ = ["DevicePlan", "TilePlan", "Tiling", "device_plan", "plan"]

INT32_MAX = 2**31 - 1
STATUS_NEGATIVE_SIZE = 1
STATUS_TILE_OVERFLOW = 2


@dataclass(frozen=True)
class Tiling:
    """The tile shape: how many elements of a task one tile covers along each dimension.

    Parameters
    ----------
    tile_shape : tuple of int
        One positive extent per dimension, e.g. ``(128, 256)`` for (rows, columns).
    """

    tile_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        shape = self.tile_shape
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),)
        if not isinstance(shape, (tuple, list)) or not shape:
            raise InvalidArgumentError(f"`tile_shape` must be a non-empty tuple of ints (got {self.tile_shape!r})")
        if len(shape) > 3:
            raise InvalidArgumentError(f"`tile_shape` must have 1 to 3 dimensions (got {len(shape)})")
        for t in shape:
            if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 1 <= int(t) <= INT32_MAX:
                raise InvalidArgumentError(
                    f"`tile_shape` must hold integers between 1 and {INT32_MAX} (got {tuple(shape)!r})"
                )
        object.__setattr__(self, "tile_shape", tuple(int(t) for t in shape))

    @property
    def ndim(self) -> int:
        return len(self.tile_shape)

    @staticmethod
    def of(tiling: Tiling | int | Sequence[int]) -> Tiling:
        """Accept a Tiling, an int (1-D) or a tuple of ints."""
        if isinstance(tiling, Tiling):
            return tiling
        if isinstance(tiling, (int, np.integer)) and not isinstance(tiling, bool):
            return Tiling((int(tiling),))
        if isinstance(tiling, (tuple, list)):
            return Tiling(tuple(tiling))
        raise InvalidArgumentError(f"`tiling` must be a Tiling, an int or a tuple of ints (got {tiling!r})")

    def tile_counts(self, sizes: np.ndarray) -> np.ndarray:
        """Tiles per task (int64 ``[num_tasks]``) for int64 sizes ``[num_tasks, ndim]``."""
        shape = np.asarray(self.tile_shape, dtype=np.int64)
        per_dim = (sizes + shape - 1) // shape
        if sizes.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        # A product that would wrap int64 is clamped: it is far past int32 and refused anyway.
        approx = np.prod(per_dim.astype(np.float64), axis=1)
        safe = np.where(approx < 2.0**62, per_dim.T, 1).T
        return np.where(approx < 2.0**62, np.prod(safe, axis=1, dtype=np.int64), np.int64(2**62))


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class TilePlan:
    """A static plan built on the host. Frozen; arrays are read-only numpy arrays.

    Attributes
    ----------
    tiling : Tiling
    sizes : numpy.ndarray
        int64 ``[num_tasks, ndim]``: each task's size along each dimension.
    tile_offsets : numpy.ndarray
        int32 ``[num_tasks + 1]``: exclusive prefix sum of tiles per task; the last entry is
        the total.
    task_starts : numpy.ndarray
        int64 ``[num_tasks + 1]``: exclusive prefix sum of ``sizes[:, 0]``.
    """

    tiling: Tiling
    sizes: np.ndarray
    tile_offsets: np.ndarray
    task_starts: np.ndarray
    _device_cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def num_tasks(self) -> int:
        return int(self.sizes.shape[0])

    @property
    def total_tiles(self) -> int:
        return int(self.tile_offsets[-1])

    @property
    def tile_counts(self) -> np.ndarray:
        """int32 ``[num_tasks]``: tiles per task."""
        return np.diff(self.tile_offsets)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TilePlan):
            return NotImplemented
        return (
            self.tiling == other.tiling
            and np.array_equal(self.sizes, other.sizes)
            and np.array_equal(self.tile_offsets, other.tile_offsets)
            and np.array_equal(self.task_starts, other.task_starts)
        )

    __hash__ = None  # type: ignore[assignment]

    def device_arrays(self, device: Any) -> tuple[Any, Any, Any]:
        """(tile_offsets, sizes, task_starts) as torch tensors on ``device``, uploaded once."""
        import torch

        dev = torch.device(device)
        key = str(dev)
        arrays = self._device_cache.get(key)
        if arrays is None:
            arrays = tuple(
                torch.from_numpy(np.array(a)).to(dev)
                for a in (self.tile_offsets, self.sizes, self.task_starts)
            )
            self._device_cache[key] = arrays
        return arrays  # type: ignore[return-value]


def _as_sizes(sizes: Any, tiling: Tiling) -> np.ndarray:
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None  # type: ignore[assignment]
    if torch is not None and isinstance(sizes, torch.Tensor):
        if sizes.device.type != "cpu":
            raise InvalidArgumentError(
                f"`sizes` must be on the CPU for plan() (got a tensor on {sizes.device}); "
                "use staticbatch.device_plan() for sizes that live on the GPU"
            )
        if sizes.dtype.is_floating_point or sizes.dtype.is_complex or sizes.dtype == torch.bool:
            raise InvalidArgumentError(f"`sizes` must hold integers (got dtype {sizes.dtype})")
        arr = sizes.numpy()
    else:
        try:
            arr = np.asarray(sizes)
        except (ValueError, TypeError) as exc:
            raise InvalidArgumentError(f"`sizes` must be an array of integers ({exc})") from None
        if arr.dtype == object and arr.size == 0:
            arr = arr.astype(np.int64)
    if arr.size == 0 and arr.ndim <= 1:
        arr = arr.reshape(0, tiling.ndim).astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise InvalidArgumentError(f"`sizes` must hold integers (got dtype {arr.dtype})")
    if arr.ndim == 1 and tiling.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape[1] != tiling.ndim:
        raise InvalidArgumentError(
            f"`sizes` must have shape [num_tasks, {tiling.ndim}] to match tile_shape={tiling.tile_shape}"
            + (" (or [num_tasks] for a 1-D tiling)" if tiling.ndim == 1 else "")
            + f" (got shape {list(arr.shape)})"
        )
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise InvalidArgumentError("`sizes` must fit in int64")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        task, dim = np.argwhere(arr < 0)[0]
        raise InvalidArgumentError(f"`sizes` must be >= 0 (got {arr[task, dim]} for task {task}, dimension {dim})")
    if arr.shape[0] > INT32_MAX - 1:
        raise InvalidArgumentError(f"`sizes` must describe fewer than {INT32_MAX} tasks (got {arr.shape[0]})")
    return arr


def plan(sizes: Any, tiling: Tiling | int | Sequence[int]) -> TilePlan:
    """Cut tasks of the given sizes into tiles and lay the tile counts out as prefix sums.

    Parameters
    ----------
    sizes : array-like of int, ``[num_tasks, ndim]`` or ``[num_tasks]`` for a 1-D tiling
        Each task's extent along each dimension, on the host (list, numpy array or CPU
        tensor). Zero is allowed: an empty task gets no tiles.
    tiling : Tiling, int or tuple of int
        The tile shape; a task of size (m, n) with tile (BM, BN) gets
        ceil(m / BM) * ceil(n / BN) tiles.

    Returns
    -------
    TilePlan

    Raises
    ------
    InvalidArgumentError
        Sizes of the wrong type, shape, or negative.
    PlanOverflowError
        The total tile count does not fit in int32.

    Examples
    --------
    >>> p = plan([[300, 512], [0, 512], [64, 100]], (128, 256))
    >>> p.tile_offsets.tolist()
    [0, 6, 6, 7]
    """
    tiling = Tiling.of(tiling)
    arr = _as_sizes(sizes, tiling)
    counts = tiling.tile_counts(arr)
    offsets = np.zeros(arr.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    total = int(offsets[-1]) if arr.shape[0] else 0
    if total > INT32_MAX or (counts.size and int(counts.max()) > INT32_MAX):
        raise PlanOverflowError(
            f"the plan needs {total} tiles, more than int32 holds ({INT32_MAX}); use a larger tile shape "
            f"than {tiling.tile_shape} or split the batch"
        )
    starts = np.zeros(arr.shape[0] + 1, dtype=np.int64)
    np.cumsum(arr[:, 0], out=starts[1:])
    return TilePlan(
        tiling=tiling,
        sizes=_readonly(arr),
        tile_offsets=_readonly(offsets.astype(np.int32)),
        task_starts=_readonly(starts),
    )


@dataclass(frozen=True, eq=False)
class DevicePlan:
    """A plan built on the GPU. Its tensors are written by :func:`device_plan` with no host
    sync; its total tile count is known only on the device (kernels read it from
    ``tile_offsets[num_tasks]``).

    Attributes
    ----------
    tiling : Tiling
    num_tasks : int
    tile_offsets : torch.Tensor
        int32 ``[num_tasks + 1]``, cuda.
    sizes : torch.Tensor
        int64 ``[num_tasks, ndim]``, cuda (negative input sizes read as 0).
    task_starts : torch.Tensor
        int64 ``[num_tasks + 1]``, cuda.
    status : torch.Tensor
        int32 ``[1]``, cuda: bit 0 set if a size was negative, bit 1 if the total tile count
        passed INT32_MAX (then offsets saturate and tiles past INT32_MAX do not run).
    """

    tiling: Tiling
    num_tasks: int
    tile_offsets: Any
    sizes: Any
    task_starts: Any
    status: Any

    def device_arrays(self, device: Any) -> tuple[Any, Any, Any]:
        return self.tile_offsets, self.sizes, self.task_starts

    def check(self) -> DevicePlan:
        """Raise if the build recorded an error. Synchronises with the device."""
        status = int(self.status.item())
        if status & STATUS_TILE_OVERFLOW:
            raise PlanOverflowError(
                f"the device plan needs more than {INT32_MAX} tiles; tiles past that were not run "
                f"(tile shape {self.tiling.tile_shape})"
            )
        if status & STATUS_NEGATIVE_SIZE:
            raise InvalidArgumentError("`sizes` must be >= 0; the device plan met a negative size and read it as 0")
        return self

    def to_host(self) -> TilePlan:
        """Copy to a :class:`TilePlan` (synchronises). For tests and debugging."""
        self.check()
        return TilePlan(
            tiling=self.tiling,
            sizes=_readonly(self.sizes.cpu().numpy().copy()),
            tile_offsets=_readonly(self.tile_offsets.cpu().numpy().copy()),
            task_starts=_readonly(self.task_starts.cpu().numpy().copy()),
        )


_SIZE_DTYPES = {"torch.int32": ("int32_t", "i32"), "torch.int64": ("int64_t", "i64")}


def _device_plan_source(tiling: Tiling, ctype: str, tag: str) -> tuple[str, str]:
    shape = ",".join(str(t) for t in tiling.tile_shape)
    name = f"sb_device_plan_{tag}_t{'x'.join(str(t) for t in tiling.tile_shape)}"
    source = f"""#include <staticbatch/plan.cuh>
using Shape = staticbatch::TileShape<{shape}>;
extern "C" __global__ void __launch_bounds__(1024) {name}(
    const staticbatch::{ctype}* sizes, staticbatch::int64_t stride_task, staticbatch::int64_t stride_dim,
    staticbatch::int32_t num_tasks, staticbatch::int32_t* tile_offsets, staticbatch::int64_t* sizes_out,
    staticbatch::int64_t* task_starts, staticbatch::int32_t* status) {{
  staticbatch::build_plan<Shape>(sizes, stride_task, stride_dim, num_tasks, tile_offsets, sizes_out,
                                 task_starts, status);
}}
"""
    return source, name


def device_plan_kernel(tiling: Tiling, dtype: str) -> Any:
    """The compiled plan-building kernel for a tiling and size dtype (``"torch.int32"`` or ``"torch.int64"``)."""
    from staticbatch._compile import compile_source

    ctype, tag = _SIZE_DTYPES[dtype]
    source, name = _device_plan_source(tiling, ctype, tag)
    return compile_source(source, name)


def device_plan(sizes: Any, tiling: Tiling | int | Sequence[int], *, out: DevicePlan | None = None) -> DevicePlan:
    """Build a plan on the GPU from sizes on the GPU, with no host synchronisation.

    One kernel launch of one block; capturable in a CUDA graph. Replaying the graph after
    writing new values into ``sizes`` rebuilds the plan in place.

    Parameters
    ----------
    sizes : torch.Tensor
        int32 or int64, ``[num_tasks, ndim]`` (or ``[num_tasks]`` for a 1-D tiling), cuda.
        Any strides. Negative sizes cannot be refused without a sync: they count as 0 and
        set a flag that :meth:`DevicePlan.check` raises.
    tiling : Tiling, int or tuple of int
    out : DevicePlan, optional
        A plan of the same shape whose tensors are overwritten (no allocation).

    Returns
    -------
    DevicePlan
    """
    import torch

    from staticbatch import _launch

    tiling = Tiling.of(tiling)
    if not isinstance(sizes, torch.Tensor):
        raise InvalidArgumentError(f"`sizes` must be a torch.Tensor on a CUDA device (got {type(sizes).__name__})")
    if str(sizes.dtype) not in _SIZE_DTYPES:
        raise InvalidArgumentError(f"`sizes` must have dtype torch.int32 or torch.int64 (got {sizes.dtype})")
    view = sizes.reshape(-1, 1) if (sizes.dim() == 1 and tiling.ndim == 1) else sizes
    if view.dim() != 2 or view.shape[1] != tiling.ndim:
        raise InvalidArgumentError(
            f"`sizes` must have shape [num_tasks, {tiling.ndim}] to match tile_shape={tiling.tile_shape}"
            f" (got shape {list(sizes.shape)})"
        )
    if sizes.device.type != "cuda":
        raise InvalidArgumentError(
            f"`sizes` must be on a CUDA device for device_plan() (got {sizes.device}); use staticbatch.plan() on the host"
        )
    num_tasks = int(view.shape[0])
    if num_tasks > INT32_MAX - 1:
        raise InvalidArgumentError(f"`sizes` must describe fewer than {INT32_MAX} tasks (got {num_tasks})")
    device_index = _launch.require_gpu(sizes.device)
    if out is None:
        dev = sizes.device
        out = DevicePlan(
            tiling=tiling,
            num_tasks=num_tasks,
            tile_offsets=torch.empty(num_tasks + 1, dtype=torch.int32, device=dev),
            sizes=torch.empty(num_tasks, tiling.ndim, dtype=torch.int64, device=dev),
            task_starts=torch.empty(num_tasks + 1, dtype=torch.int64, device=dev),
            status=torch.empty(1, dtype=torch.int32, device=dev),
        )
    elif not isinstance(out, DevicePlan) or out.num_tasks != num_tasks or out.tiling != tiling:
        raise InvalidArgumentError(
            f"`out` must be a DevicePlan with num_tasks={num_tasks} and tiling {tiling.tile_shape} (got {out!r})"
        )
    elif out.tile_offsets.device != sizes.device:
        raise InvalidArgumentError(f"`out` must live on {sizes.device} (got {out.tile_offsets.device})")
    kernel = _launch.load(device_plan_kernel(tiling, str(sizes.dtype)), device_index)
    threads = min(1024, max(32, (num_tasks + 31) // 32 * 32))
    kernel.launch(
        1,
        threads,
        0,
        [
            view,
            np.int64(view.stride(0)),
            np.int64(view.stride(1)),
            np.int32(num_tasks),
            out.tile_offsets,
            out.sizes,
            out.task_starts,
            out.status,
        ],
    )
    return out
