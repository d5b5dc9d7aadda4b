"""staticbatch: statically batch irregular GPU work into one kernel.

Describe tasks of uneven size, cut each into uniform tiles, lay the tile counts out as
prefix sums (a plan), and launch one persistent kernel whose blocks find their (task, tile)
on the device.

>>> import staticbatch as sb
>>> p = sb.plan([5, 0, 300], 128)
>>> p.tile_offsets.tolist(), p.total_tiles
([0, 1, 1, 4], 4)
"""

from __future__ import annotations

from staticbatch._compile import CompiledKernel, cache_stats, clear_cache, compile_many, compile_source, include_dir
from staticbatch._launch import ByValue, LoadedKernel, device_properties, load
from staticbatch._version import __version__
from staticbatch.errors import (
    CacheWarning,
    CompileError,
    InvalidArgumentError,
    LaunchError,
    PlanOverflowError,
    StaticBatchError,
    UnsupportedDeviceError,
)
from staticbatch.mappers import Mapper, map_tiles
from staticbatch.plans import DevicePlan, TilePlan, Tiling, device_plan, plan
from staticbatch.task import BatchedKernel, Param, TaskKind, compile_kernel
from staticbatch.tma import tensor_map

__all__ = [
    "BatchedKernel",
    "ByValue",
    "CacheWarning",
    "CompileError",
    "CompiledKernel",
    "DevicePlan",
    "InvalidArgumentError",
    "LaunchError",
    "LoadedKernel",
    "Mapper",
    "Param",
    "PlanOverflowError",
    "StaticBatchError",
    "TaskKind",
    "TilePlan",
    "Tiling",
    "UnsupportedDeviceError",
    "__version__",
    "cache_stats",
    "clear_cache",
    "compile_kernel",
    "compile_many",
    "compile_source",
    "device_plan",
    "device_properties",
    "include_dir",
    "load",
    "map_tiles",
    "plan",
    "tensor_map",
]
