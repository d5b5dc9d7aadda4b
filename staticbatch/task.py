"""Task kinds: a CUDA tile body plus its parameters and tiling, compiled into one kernel.

A task kind says what one tile of one task does. The framework generates the
``extern "C" __global__`` kernel around it: the persistent loop over the plan's tiles, the
mapper that finds each tile's (task, index), and the call of the body. See
docs/custom-task-kinds.md for a walk-through.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from staticbatch._compile import CompiledKernel, compile_source
from staticbatch.errors import InvalidArgumentError
from staticbatch.mappers import Mapper
from staticbatch.plans import DevicePlan, TilePlan, Tiling

__all__ = ["BatchedKernel", "Param", "TaskKind", "compile_kernel"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = {"p", "plan", "t"}

# Scalar parameter types and the numpy type the launcher passes for them.
_SCALAR_TYPES: dict[str, type] = {
    "int": np.int32,
    "int32_t": np.int32,
    "unsigned": np.uint32,
    "uint32_t": np.uint32,
    "int64_t": np.int64,
    "long long": np.int64,
    "uint64_t": np.uint64,
    "float": np.float32,
    "double": np.float64,
}
# Pointee types of pointer parameters and the torch dtypes they accept ("void": any).
_POINTEE_DTYPES: dict[str, tuple[str, ...]] = {
    "void": (),
    "float": ("torch.float32",),
    "double": ("torch.float64",),
    "__half": ("torch.float16",),
    "half": ("torch.float16",),
    "__nv_bfloat16": ("torch.bfloat16",),
    "int": ("torch.int32",),
    "int32_t": ("torch.int32",),
    "uint32_t": ("torch.int32",),
    "int64_t": ("torch.int64",),
    "uint64_t": ("torch.int64",),
    "int8_t": ("torch.int8",),
    "uint8_t": ("torch.uint8", "torch.bool"),
    "int16_t": ("torch.int16",),
}


@dataclass(frozen=True)
class Param:
    """One kernel parameter of a task kind: a C type and a name.

    Pointers (``"const float*"``, ``"__nv_bfloat16*"``) take torch tensors of the matching
    dtype (contiguous, on the launch device) or ``None``; scalars (``int32_t``, ``int64_t``,
    ``float``, ...) take Python or numpy numbers, checked for range.
    """

    ctype: str
    name: str

    def __post_init__(self) -> None:
        ctype = " ".join(self.ctype.replace("*", " * ").split()).replace(" *", "*")
        object.__setattr__(self, "ctype", ctype)
        if not _IDENT.match(self.name) or self.name.startswith("sb_") or self.name in _RESERVED:
            raise InvalidArgumentError(
                f"parameter name must be a C identifier not starting with 'sb_' and not one of "
                f"{sorted(_RESERVED)} (got {self.name!r})"
            )
        if self.is_pointer:
            if self.ctype.count("*") != 1 or self.pointee not in _POINTEE_DTYPES:
                raise InvalidArgumentError(
                    f"parameter {self.name!r}: pointer type must point to one of {sorted(_POINTEE_DTYPES)} "
                    f"(got {self.ctype!r})"
                )
        elif self.ctype not in _SCALAR_TYPES:
            raise InvalidArgumentError(
                f"parameter {self.name!r}: type must be a pointer or one of {sorted(_SCALAR_TYPES)} (got {self.ctype!r})"
            )

    @staticmethod
    def parse(spec: Param | str | tuple[str, str]) -> Param:
        """From ``"const float* x"``, ``("const float*", "x")`` or a Param."""
        if isinstance(spec, Param):
            return spec
        if isinstance(spec, tuple) and len(spec) == 2:
            return Param(spec[0], spec[1])
        if isinstance(spec, str):
            m = re.match(r"^(.*?)([A-Za-z_][A-Za-z0-9_]*)\s*$", spec.strip())
            if m and m.group(1).strip():
                return Param(m.group(1).strip(), m.group(2))
        raise InvalidArgumentError(f"a parameter must look like 'const float* x' (got {spec!r})")

    @property
    def is_pointer(self) -> bool:
        return "*" in self.ctype

    @property
    def pointee(self) -> str:
        base = self.ctype.split("*")[0]
        base = re.sub(r"\b(const|volatile|__restrict__|restrict)\b", "", base)
        return " ".join(base.split()).replace("staticbatch::", "")

    def convert(self, value: Any, kernel: str, device: Any) -> Any:
        """The launcher's argument for ``value``, or a clear error."""
        import torch

        if self.is_pointer:
            if value is None:
                return None
            if not isinstance(value, torch.Tensor):
                raise InvalidArgumentError(
                    f"`{self.name}` of {kernel} must be a torch.Tensor or None (got {type(value).__name__})"
                )
            allowed = _POINTEE_DTYPES[self.pointee]
            if allowed and str(value.dtype) not in allowed:
                raise InvalidArgumentError(
                    f"`{self.name}` of {kernel} must have dtype {' or '.join(allowed)} for {self.ctype!r} "
                    f"(got {value.dtype})"
                )
            if value.device != device:
                raise InvalidArgumentError(f"`{self.name}` of {kernel} must be on {device} (got {value.device})")
            if not value.is_contiguous():
                raise InvalidArgumentError(
                    f"`{self.name}` of {kernel} must be contiguous: the kernel receives a raw pointer "
                    f"(got strides {value.stride()} for shape {list(value.shape)})"
                )
            return value
        np_type = _SCALAR_TYPES[self.ctype]
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise InvalidArgumentError(f"`{self.name}` of {kernel} must be a number (got {type(value).__name__})")
        if np.issubdtype(np_type, np.integer):
            if isinstance(value, (float, np.floating)) and not float(value).is_integer():
                raise InvalidArgumentError(f"`{self.name}` of {kernel} must be an integer for {self.ctype} (got {value})")
            info = np.iinfo(np_type)
            if not info.min <= int(value) <= info.max:
                raise InvalidArgumentError(
                    f"`{self.name}` of {kernel} must be between {info.min} and {info.max} for {self.ctype} (got {value})"
                )
            return np_type(int(value))
        return np_type(value)


@dataclass(frozen=True)
class TaskKind:
    """A kind of task: what one tile of one task computes.

    Parameters
    ----------
    name : str
        A C identifier; the kernel is named ``sb_<name>_t<tile shape>_<mapper>``.
    tiling : Tiling, int or tuple of int
        Tile shape; plans launched with this kind must use the same tiling.
    params : sequence of Param or str
        Kernel parameters after the plan, e.g. ``["const float* x", "float* y", "float alpha"]``.
    body : str
        CUDA C++ defining ``__device__ void tile(const Params& p, const Tile& t)``. ``Params``
        is generated (one member per parameter); ``Tile`` is ``staticbatch::Tile<ndim>``
        (fields ``id, task, index, coord[ndim], size[ndim], start``); ``kNdim`` and
        ``kTileShape[d]`` are constants. The body may define helpers before ``tile``.
    block_size : int
        Threads per block (a multiple of 32, at most 1024).
    shared_bytes : int
        Dynamic shared memory per block, reached with ``staticbatch::dynamic_smem<T>()``.
    includes : tuple of str
        Extra headers, e.g. ``("cuda_bf16.h",)``.
    """

    name: str
    tiling: Tiling
    params: tuple[Param, ...]
    body: str
    block_size: int = 128
    shared_bytes: int = 0
    includes: tuple[str, ...] = ()

    def __init__(
        self,
        name: str,
        tiling: Tiling | int | Sequence[int],
        params: Sequence[Param | str | tuple[str, str]],
        body: str,
        block_size: int = 128,
        shared_bytes: int = 0,
        includes: Sequence[str] = (),
    ) -> None:
        if not isinstance(name, str) or not _IDENT.match(name):
            raise InvalidArgumentError(f"`name` must be a C identifier (got {name!r})")
        parsed = tuple(Param.parse(p) for p in params)
        names = [p.name for p in parsed]
        if len(set(names)) != len(names):
            raise InvalidArgumentError(f"`params` must have distinct names (got {names})")
        if not isinstance(body, str) or "tile" not in body:
            raise InvalidArgumentError("`body` must be CUDA C++ defining `__device__ void tile(const Params& p, const Tile& t)`")
        if isinstance(block_size, bool) or not isinstance(block_size, int) or not (32 <= block_size <= 1024) or block_size % 32:
            raise InvalidArgumentError(f"`block_size` must be a multiple of 32 between 32 and 1024 (got {block_size!r})")
        if isinstance(shared_bytes, bool) or not isinstance(shared_bytes, int) or not 0 <= shared_bytes <= 227 * 1024:
            raise InvalidArgumentError(f"`shared_bytes` must be an int between 0 and {227 * 1024} (got {shared_bytes!r})")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "tiling", Tiling.of(tiling))
        object.__setattr__(self, "params", parsed)
        object.__setattr__(self, "body", body)
        object.__setattr__(self, "block_size", block_size)
        object.__setattr__(self, "shared_bytes", shared_bytes)
        object.__setattr__(self, "includes", tuple(includes))

    def kernel_name(self, mapper: Mapper) -> str:
        shape = "x".join(str(t) for t in self.tiling.tile_shape)
        return f"sb_{self.name}_t{shape}_{mapper.tag}"

    def source(self, mapper: Mapper | str = "warp_search") -> str:
        """The generated translation unit."""
        mapper = Mapper.of(mapper)
        ndim = self.tiling.ndim
        shape = ", ".join(str(t) for t in self.tiling.tile_shape)
        includes = "".join(f"#include <{h}>\n" for h in self.includes)
        members = "".join(f"  {p.ctype} {p.name};\n" for p in self.params)
        kparams = "".join(f",\n    {p.ctype} {p.name}" for p in self.params)
        init = ", ".join(p.name for p in self.params)
        name = self.kernel_name(mapper)
        return f"""// Generated by staticbatch for task kind {self.name!r}.
#include <staticbatch/kernel.cuh>
{includes}
namespace sb_task {{
using namespace staticbatch;
constexpr int kNdim = {ndim};
constexpr int64_t kTileShape[kNdim] = {{{shape}}};
using Tile = staticbatch::Tile<kNdim>;
struct Params {{
{members}}};
#line 1 "{self.name}.body"
{self.body}
}}  // namespace sb_task

extern "C" __global__ void __launch_bounds__({self.block_size}) {name}(
    const staticbatch::int32_t* sb_tile_offsets, const staticbatch::int64_t* sb_sizes,
    const staticbatch::int64_t* sb_task_starts, staticbatch::int32_t sb_num_tasks{kparams}) {{
  const sb_task::Params p{{{init}}};
  const staticbatch::PlanView plan{{sb_tile_offsets, sb_sizes, sb_task_starts, sb_num_tasks}};
  staticbatch::for_each_tile<staticbatch::TileShape<{shape}>, {mapper.cpp_type}>(
      plan, [&](const sb_task::Tile& t) {{ sb_task::tile(p, t); }});
}}
"""


class BatchedKernel:
    """A task kind compiled with one mapper; launch it on any plan of its tiling.

    Attributes
    ----------
    kind : TaskKind
    mapper : Mapper
    compiled : CompiledKernel
        The cubin (compiled at construction; no GPU needed for that).
    """

    def __init__(self, kind: TaskKind, mapper: Mapper | str = "warp_search", *, arch: str | None = None) -> None:
        self.kind = kind
        self.mapper = Mapper.of(mapper)
        self.name = kind.kernel_name(self.mapper)
        self.compiled: CompiledKernel = compile_source(kind.source(self.mapper), self.name, arch=arch)

    def __repr__(self) -> str:
        return f"BatchedKernel({self.name}, arch={self.compiled.arch})"

    def grid_size(self, plan: TilePlan | DevicePlan, device_index: int) -> int:
        """Blocks of the persistent grid: #SMs x blocks per SM, capped at the tile count when
        the plan is on the host (a device plan's count is unknown without a sync)."""
        from staticbatch import _launch

        loaded = _launch.load(self.compiled, device_index)
        sms = _launch.device_properties(device_index).num_sms
        grid = sms * loaded.blocks_per_sm(self.kind.block_size, self.kind.shared_bytes)
        if isinstance(plan, TilePlan):
            grid = min(grid, plan.total_tiles)
        return grid

    def __call__(self, plan: TilePlan | DevicePlan, *args: Any, grid: int | None = None) -> None:
        self.launch(plan, *args, grid=grid)

    def launch(self, plan: TilePlan | DevicePlan, *args: Any, grid: int | None = None) -> None:
        """Run every tile of ``plan`` on torch's current stream.

        Parameters
        ----------
        plan : TilePlan or DevicePlan
            Built with this kind's tiling.
        *args
            One value per parameter of the kind, in order.
        grid : int, optional
            Number of blocks; default the persistent grid (:meth:`grid_size`).
        """
        import torch

        from staticbatch import _launch

        if not isinstance(plan, (TilePlan, DevicePlan)):
            raise InvalidArgumentError(f"`plan` must be a TilePlan or DevicePlan (got {type(plan).__name__})")
        if plan.tiling != self.kind.tiling:
            raise InvalidArgumentError(
                f"`plan` must use the kind's tile shape {self.kind.tiling.tile_shape} (got {plan.tiling.tile_shape})"
            )
        self.mapper.check_tasks(plan.num_tasks)
        if len(args) != len(self.kind.params):
            names = ", ".join(p.name for p in self.kind.params)
            raise InvalidArgumentError(f"{self.name} takes {len(self.kind.params)} arguments ({names}); got {len(args)}")
        if isinstance(plan, DevicePlan):
            device = plan.tile_offsets.device
        else:
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            device = tensors[0].device if tensors else torch.device("cuda", torch.cuda.current_device())
        device_index = _launch.require_gpu(device)
        device = torch.device("cuda", device_index)
        converted = [p.convert(a, self.name, device) for p, a in zip(self.kind.params, args)]
        if isinstance(plan, TilePlan) and plan.total_tiles == 0:
            return
        if grid is None:
            grid = self.grid_size(plan, device_index)
        elif isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
            raise InvalidArgumentError(f"`grid` must be a positive int (got {grid!r})")
        tile_offsets, sizes, task_starts = plan.device_arrays(device)
        loaded = _launch.load(self.compiled, device_index)
        loaded.launch(
            grid,
            self.kind.block_size,
            self.kind.shared_bytes,
            [tile_offsets, sizes, task_starts, np.int32(plan.num_tasks), *converted],
        )


def compile_kernel(kind: TaskKind, mapper: Mapper | str = "warp_search", *, arch: str | None = None) -> BatchedKernel:
    """Generate and compile the batched kernel of a task kind (cached in memory and on disk).

    Parameters
    ----------
    kind : TaskKind
    mapper : Mapper or {"warp_search", "binary_search", "warp_scan"}
        Default ``warp_search``; all three find the same (task, tile) for every tile id.
    arch : str, optional
        Compile target, default the current GPU's (``sm_90a`` on Hopper or without a GPU).

    Returns
    -------
    BatchedKernel
    """
    if not isinstance(kind, TaskKind):
        raise InvalidArgumentError(f"`kind` must be a TaskKind (got {type(kind).__name__})")
    return BatchedKernel(kind, mapper, arch=arch)
