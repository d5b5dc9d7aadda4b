"""TMA descriptors (``CUtensorMap``) for kernels that take them by value.

A tensor map tells the copy engine how a global tensor is laid out and which box one copy
moves. Kernels receive it as a ``const __grid_constant__`` 128-byte parameter; here it is
encoded with the driver's ``cuTensorMapEncodeTiled`` and handed back as raw bytes, ready for
:class:`staticbatch.ByValue` (64-byte aligned).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

from staticbatch.errors import InvalidArgumentError

__all__ = ["tensor_map"]

_SWIZZLES = {0: "NONE", 32: "32B", 64: "64B", 128: "128B"}


def tensor_map(
    tensor: Any,
    sizes: Sequence[int],
    strides: Sequence[int],
    box: Sequence[int],
    *,
    swizzle: int = 128,
    name: str = "tensor",
) -> bytes:
    """Encode a tiled tensor map over ``tensor``'s memory.

    Parameters
    ----------
    tensor : torch.Tensor
        bf16 or fp16, cuda, 16-byte aligned address (its data pointer is the map's base).
    sizes : sequence of int
        Extent of each dimension in elements, innermost (contiguous) first; rank 1 to 5.
    strides : sequence of int
        Byte stride of dimensions 1.. (``len(sizes) - 1`` values, each a multiple of 16).
    box : sequence of int
        Elements one copy moves along each dimension (each 1 to 256).
    swizzle : {0, 32, 64, 128}
        Shared-memory swizzle in bytes; the innermost box must span at most that many bytes.
    name : str
        The argument's name, for error messages.

    Returns
    -------
    bytes
        The 128-byte ``CUtensorMap``. It holds the tensor's address: rebuild it if that changes.
    """
    import torch
    from cuda.bindings import driver

    types = {
        torch.bfloat16: driver.CUtensorMapDataType.CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
        torch.float16: driver.CUtensorMapDataType.CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
    }
    if tensor.dtype not in types:
        raise InvalidArgumentError(f"`{name}` must be bf16 or fp16 for a tensor map (got {tensor.dtype})")
    rank = len(sizes)
    if not 1 <= rank <= 5 or len(strides) != rank - 1 or len(box) != rank:
        raise InvalidArgumentError(
            f"`{name}`: a tensor map needs 1 to 5 sizes, one stride fewer and as many box extents "
            f"(got sizes {list(sizes)}, strides {list(strides)}, box {list(box)})"
        )
    if tensor.data_ptr() % 16 or any(s % 16 for s in strides):
        raise InvalidArgumentError(
            f"`{name}` must have a 16-byte aligned address and byte strides that are multiples of 16 "
            f"(got strides {list(strides)})"
        )
    if swizzle not in _SWIZZLES:
        raise InvalidArgumentError(f"`swizzle` must be one of {sorted(_SWIZZLES)} (got {swizzle})")
    u64, u32 = driver.cuuint64_t, driver.cuuint32_t
    err, tmap = driver.cuTensorMapEncodeTiled(
        types[tensor.dtype],
        u32(rank),
        tensor.data_ptr(),
        [u64(s) for s in sizes],
        [u64(s) for s in strides],
        [u32(b) for b in box],
        [u32(1)] * rank,
        driver.CUtensorMapInterleave.CU_TENSOR_MAP_INTERLEAVE_NONE,
        getattr(driver.CUtensorMapSwizzle, f"CU_TENSOR_MAP_SWIZZLE_{_SWIZZLES[swizzle]}"),
        driver.CUtensorMapL2promotion.CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
        driver.CUtensorMapFloatOOBfill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
    )
    if err != driver.CUresult.CUDA_SUCCESS:
        raise InvalidArgumentError(
            f"cuTensorMapEncodeTiled rejected `{name}` (sizes {list(sizes)}, strides {list(strides)}, "
            f"box {list(box)}): {err}"
        )
    return ctypes.string_at(tmap.getPtr(), 128)
