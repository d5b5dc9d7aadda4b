"""Load cubins on a GPU and launch them on torch's current stream.

Launching goes through the driver's ``cuLaunchKernel`` (``cuda.bindings``) with an argument
array packed here, not through ``cuda.core.launch``: that one accepts only scalars, pointers
and its own tensor-map class, while our kernels also take 128-byte by-value structs such as
TMA descriptors. Contexts are torch's: the device's primary context, made current here.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from staticbatch._compile import CompiledKernel
from staticbatch.errors import InvalidArgumentError, LaunchError, UnsupportedDeviceError

__all__ = ["ByValue", "LoadedKernel", "device_properties", "load", "torch_stream"]

logger = logging.getLogger("staticbatch.launch")

_loaded: dict[tuple[str, str, int], LoadedKernel] = {}
_contexts: dict[int, Any] = {}
_props: dict[int, DeviceProperties] = {}
_lock = threading.Lock()

_SCALARS: dict[type, type] = {
    np.int32: ctypes.c_int32,
    np.int64: ctypes.c_int64,
    np.uint32: ctypes.c_uint32,
    np.uint64: ctypes.c_uint64,
    np.float32: ctypes.c_float,
    np.float64: ctypes.c_double,
}


def _Tensor() -> type:  # noqa: N802 - torch.Tensor, imported on first use
    global _tensor_type
    if _tensor_type is None:
        import torch

        _tensor_type = torch.Tensor
    return _tensor_type


_tensor_type: type | None = None


class ByValue:
    """A by-value kernel argument given as raw bytes, e.g. a 128-byte ``CUtensorMap``.

    Parameters
    ----------
    data : bytes
        The struct's bytes, exactly as the kernel declares it.
    align : int
        Its alignment in bytes (64 for a tensor map).
    """

    __slots__ = ("_buffer", "_offset", "size")

    def __init__(self, data: bytes, align: int = 16) -> None:
        if not isinstance(data, (bytes, bytearray)) or not data:
            raise InvalidArgumentError(f"`data` must be non-empty bytes (got {type(data).__name__})")
        self.size = len(data)
        self._buffer = ctypes.create_string_buffer(self.size + align)
        self._offset = (-ctypes.addressof(self._buffer)) % align
        ctypes.memmove(ctypes.addressof(self._buffer) + self._offset, bytes(data), self.size)

    @property
    def address(self) -> int:
        return ctypes.addressof(self._buffer) + self._offset


def _check(result: Any, what: str) -> Any:
    from cuda.bindings import driver

    err = result[0] if isinstance(result, tuple) else result
    if err != driver.CUresult.CUDA_SUCCESS:
        _, name = driver.cuGetErrorName(err)
        _, text = driver.cuGetErrorString(err)
        name = name.decode() if isinstance(name, bytes) else name
        text = text.decode() if isinstance(text, bytes) else text
        raise LaunchError(f"{what} failed: {name}: {text}")
    if isinstance(result, tuple):
        return result[1] if len(result) == 2 else result[1:]
    return None


def _make_current(device_index: int) -> None:
    """Make the device's primary context (torch's) current on this thread."""
    from cuda.bindings import driver

    ctx = _contexts.get(device_index)
    if ctx is None:
        import torch

        torch.cuda.init()
        _check(driver.cuInit(0), "cuInit")
        dev = _check(driver.cuDeviceGet(device_index), "cuDeviceGet")
        ctx = _check(driver.cuDevicePrimaryCtxRetain(dev), "cuDevicePrimaryCtxRetain")
        _contexts[device_index] = ctx
    current = _check(driver.cuCtxGetCurrent(), "cuCtxGetCurrent")
    if int(current) != int(ctx):
        _check(driver.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")


@dataclass(frozen=True)
class DeviceProperties:
    """What the launcher needs to know about a GPU."""

    index: int
    name: str
    capability: tuple[int, int]
    num_sms: int
    max_smem_per_block: int


def device_properties(device_index: int) -> DeviceProperties:
    """Properties of a CUDA device (cached)."""
    props = _props.get(device_index)
    if props is None:
        import torch

        p = torch.cuda.get_device_properties(device_index)
        from cuda.bindings import driver

        _make_current(device_index)
        dev = _check(driver.cuDeviceGet(device_index), "cuDeviceGet")
        attr = driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
        max_smem = int(_check(driver.cuDeviceGetAttribute(attr, dev), "cuDeviceGetAttribute"))
        props = DeviceProperties(device_index, p.name, (p.major, p.minor), p.multi_processor_count, max_smem)
        _props[device_index] = props
    return props


_streams: dict[int, Any] = {}


def torch_stream(device_index: int) -> Any:
    """torch's current stream on the device, as a driver stream handle (cached per handle)."""
    import torch
    from cuda.bindings import driver

    raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    handle = raw_stream(device_index) if raw_stream is not None else torch.cuda.current_stream(device_index).cuda_stream
    stream = _streams.get(handle)
    if stream is None:
        stream = _streams[handle] = driver.CUstream(handle)
    return stream


class LoadedKernel:
    """A compiled kernel loaded on one device."""

    def __init__(self, compiled: CompiledKernel, device_index: int) -> None:
        from cuda.bindings import driver

        self.compiled = compiled
        self.device_index = device_index
        _make_current(device_index)
        self._module = _check(driver.cuModuleLoadData(compiled.cubin), f"loading {compiled.name}")
        self.function = _check(driver.cuModuleGetFunction(self._module, compiled.name.encode()), "cuModuleGetFunction")
        self._occupancy: dict[tuple[int, int], int] = {}  # (block, smem) -> blocks per SM
        self._clusters: dict[tuple[int, int, int], int] = {}  # (cluster, block, smem) -> resident clusters
        attr = driver.CUfunction_attribute
        # Without the attribute a launch may use 48 KB of shared memory in all, static included:
        # dynamic bytes beyond what the static part leaves need the attribute raised first.
        static_bytes = int(
            _check(driver.cuFuncGetAttribute(attr.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, self.function), "attr")
        )
        self._smem_limit = 48 * 1024 - static_bytes
        self.num_regs = int(_check(driver.cuFuncGetAttribute(attr.CU_FUNC_ATTRIBUTE_NUM_REGS, self.function), "attr"))
        self.local_bytes = int(
            _check(driver.cuFuncGetAttribute(attr.CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, self.function), "attr")
        )

    def _ensure_smem(self, smem: int) -> None:
        from cuda.bindings import driver

        if smem > self._smem_limit:
            limit = device_properties(self.device_index).max_smem_per_block
            if smem > limit:
                raise InvalidArgumentError(
                    f"kernel {self.compiled.name} asks for {smem} bytes of dynamic shared memory; "
                    f"the device allows at most {limit}"
                )
            attr = driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
            _check(driver.cuFuncSetAttribute(self.function, attr, smem), "cuFuncSetAttribute")
            self._smem_limit = smem

    def blocks_per_sm(self, block: int, smem: int) -> int:
        """How many blocks of this kernel fit on one SM."""
        from cuda.bindings import driver

        key = (block, smem)
        if key not in self._occupancy:
            self._ensure_smem(smem)
            n = _check(
                driver.cuOccupancyMaxActiveBlocksPerMultiprocessor(self.function, block, smem),
                "cuOccupancyMaxActiveBlocksPerMultiprocessor",
            )
            if int(n) < 1:
                raise LaunchError(
                    f"kernel {self.compiled.name} cannot run with {block} threads and {smem} bytes of shared memory"
                )
            self._occupancy[key] = int(n)
        return self._occupancy[key]

    def max_active_clusters(self, cluster: int, block: int, smem: int) -> int:
        """How many clusters of ``cluster`` blocks (the kernel's compile-time ``__cluster_dims__``)
        can be resident on the device at once (``cuOccupancyMaxActiveClusters``)."""
        from cuda.bindings import driver

        key = (cluster, block, smem)
        if key not in self._clusters:
            self._ensure_smem(smem)
            _make_current(self.device_index)
            config = driver.CUlaunchConfig()
            config.gridDimX, config.gridDimY, config.gridDimZ = cluster, 1, 1
            config.blockDimX, config.blockDimY, config.blockDimZ = block, 1, 1
            config.sharedMemBytes = smem
            n = _check(driver.cuOccupancyMaxActiveClusters(self.function, config), "cuOccupancyMaxActiveClusters")
            if int(n) < 1:
                raise LaunchError(
                    f"kernel {self.compiled.name} cannot run clusters of {cluster} blocks of {block} threads and "
                    f"{smem} bytes of shared memory"
                )
            self._clusters[key] = int(n)
        return self._clusters[key]

    def launch(self, grid: int, block: int, smem: int, args: list[Any] | tuple[Any, ...], stream: Any = None,
               programmatic: bool = False, cooperative: bool = False) -> None:
        """Launch on ``stream`` (default: torch's current stream on this device).

        ``args`` hold, in the kernel's parameter order: torch tensors (passed as their data
        pointer), ``None`` (a null pointer), numpy scalars (``np.int32``, ``np.int64``,
        ``np.float32``, ...: a bare Python number is refused because its width would be a
        guess) and :class:`ByValue` structs.

        ``programmatic=True`` launches the kernel as a programmatic dependent of the kernel
        before it on the stream (``cuLaunchKernelEx`` with programmatic stream serialization,
        sm_90): it may start once that kernel's blocks have all issued
        ``griddepcontrol.launch_dependents`` or exited, and must itself execute
        ``griddepcontrol.wait`` before it touches anything that kernel writes.

        ``cooperative=True`` (a kernel whose blocks wait for each other, e.g. at a grid barrier)
        asks the driver to check that all ``grid`` blocks can be resident at once
        (``CU_LAUNCH_ATTRIBUTE_COOPERATIVE``): where they cannot (an MPS client limited to
        part of the SMs, for one), the launch fails with a :class:`LaunchError` instead of
        hanging.
        """
        from cuda.bindings import driver

        if grid < 1 or block < 1:
            raise InvalidArgumentError(f"`grid` and `block` must be >= 1 (got grid={grid}, block={block})")
        self._ensure_smem(smem)
        _make_current(self.device_index)
        holders: list[Any] = []
        pointers = (ctypes.c_void_p * max(1, len(args)))()
        for i, arg in enumerate(args):
            kind = type(arg)
            if kind in _SCALARS:  # the common cases first, by exact type
                holder: Any = _SCALARS[kind](arg.item())
            elif kind is _Tensor() and arg.get_device() == self.device_index:
                holder = ctypes.c_void_p(arg.data_ptr())
            else:
                pointers[i] = self._pack(i, arg, holders)
                continue
            holders.append(holder)
            pointers[i] = ctypes.addressof(holder)
        if stream is None:
            stream = torch_stream(self.device_index)
        if programmatic or cooperative:
            config = driver.CUlaunchConfig()
            config.gridDimX, config.gridDimY, config.gridDimZ = grid, 1, 1
            config.blockDimX, config.blockDimY, config.blockDimZ = block, 1, 1
            config.sharedMemBytes = smem
            config.hStream = stream
            attrs = []
            if programmatic:
                attr = driver.CUlaunchAttribute()
                attr.id = driver.CUlaunchAttributeID.CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION
                attr.value.programmaticStreamSerializationAllowed = 1
                attrs.append(attr)
            if cooperative:
                attr = driver.CUlaunchAttribute()
                attr.id = driver.CUlaunchAttributeID.CU_LAUNCH_ATTRIBUTE_COOPERATIVE
                attr.value.cooperative = 1
                attrs.append(attr)
            config.attrs = attrs
            config.numAttrs = len(attrs)
            how = " and ".join(w for w, on in (("programmatic dependent", programmatic), ("cooperative", cooperative))
                               if on)
            _check(
                driver.cuLaunchKernelEx(config, self.function, ctypes.addressof(pointers), 0),
                f"launching {self.compiled.name} ({how}, grid {grid})",
            )
            return
        _check(
            driver.cuLaunchKernel(
                self.function, grid, 1, 1, block, 1, 1, smem, stream, ctypes.addressof(pointers), 0
            ),
            f"launching {self.compiled.name}",
        )

    def _pack(self, i: int, arg: Any, holders: list[Any]) -> int:
        import torch

        if isinstance(arg, torch.Tensor):
            if arg.get_device() != self.device_index:  # -1 on the CPU
                raise InvalidArgumentError(
                    f"argument {i} of {self.compiled.name} must be a tensor on cuda:{self.device_index} (got {arg.device})"
                )
            holder: Any = ctypes.c_void_p(arg.data_ptr())
        elif arg is None:
            holder = ctypes.c_void_p(0)
        elif isinstance(arg, ByValue):
            holders.append(arg)
            return arg.address
        else:
            ctype = _SCALARS.get(type(arg))
            if ctype is None:
                raise InvalidArgumentError(
                    f"argument {i} of {self.compiled.name} must be a torch tensor, None, a numpy scalar "
                    f"(np.int32, np.int64, np.float32, ...) or ByValue (got {type(arg).__name__})"
                )
            holder = ctype(arg.item())
        holders.append(holder)
        return ctypes.addressof(holder)


def load(compiled: CompiledKernel, device_index: int) -> LoadedKernel:
    """The kernel loaded on ``device_index`` (cached per process)."""
    key = (compiled.key, compiled.name, device_index)
    kernel = _loaded.get(key)
    if kernel is None:
        with _lock:
            kernel = _loaded.get(key)
            if kernel is None:
                kernel = LoadedKernel(compiled, device_index)
                _loaded[key] = kernel
    return kernel


def require_gpu(device: Any) -> int:
    """The index of a usable CUDA device, or a clear error."""
    import torch

    if not torch.cuda.is_available():
        raise UnsupportedDeviceError("staticbatch kernels need a CUDA GPU; torch.cuda.is_available() is False")
    dev = torch.device(device)
    if dev.type != "cuda":
        raise UnsupportedDeviceError(f"staticbatch kernels run on CUDA tensors (got a tensor on {dev})")
    return dev.index if dev.index is not None else torch.cuda.current_device()
