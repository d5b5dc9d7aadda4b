"""Task kinds shared by the tests and the mapper benchmark."""

from __future__ import annotations

import staticbatch as sb

PROBE_BODY = r"""
// Records, per global tile id, what the mapper and the tile decomposition found.
__device__ void tile(const Params& p, const Tile& t) {
  if (threadIdx.x == 0) {
    int32_t* row = p.out + int64_t(t.id) * (2 + kNdim);
    row[0] = t.task;
    row[1] = t.index;
    for (int d = 0; d < kNdim; ++d) row[2 + d] = t.coord[d];
  }
}
"""


def probe_kind(tile_shape: tuple[int, ...], block_size: int = 64) -> sb.TaskKind:
    """Writes (task, index, coord...) for every tile id into ``out`` ``[total, 2 + ndim]``."""
    return sb.TaskKind("probe", tile_shape, ["int32_t* out"], PROBE_BODY, block_size=block_size)


RAGGED_SCALE_BODY = r"""
// y[i] = x[i] * scale[task] over one tile of kTileShape[0] elements of a task's segment.
__device__ void tile(const Params& p, const Tile& t) {
  const int64_t begin = t.start + int64_t(t.coord[0]) * kTileShape[0];
  const int64_t end = min(t.start + t.size[0], begin + kTileShape[0]);
  const float s = p.scale[t.task];
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) p.y[i] = p.x[i] * s;
}
"""


def ragged_scale_kind(tile: int = 2048) -> sb.TaskKind:
    return sb.TaskKind(
        "ragged_scale", tile, ["const float* x", "float* y", "const float* scale"], RAGGED_SCALE_BODY, block_size=256
    )


BYTE_COPY_BODY = r"""
// y[i] = x[i] + task over uint8 segments; used to cross 2^31 elements.
__device__ void tile(const Params& p, const Tile& t) {
  const int64_t begin = t.start + int64_t(t.coord[0]) * kTileShape[0];
  const int64_t end = min(t.start + t.size[0], begin + kTileShape[0]);
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) p.y[i] = uint8_t(p.x[i] + t.task);
}
"""


def byte_copy_kind() -> sb.TaskKind:
    return sb.TaskKind("byte_copy", 1 << 16, ["const uint8_t* x", "uint8_t* y"], BYTE_COPY_BODY, block_size=512)
