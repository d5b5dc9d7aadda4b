// staticbatch: common definitions shared by every header.
// Header-only, compiled by NVRTC; nothing here depends on torch or on host-only code.
#pragma once

#include <cuda/std/cstdint>

#define SB_DEVICE __device__ __forceinline__
#define SB_HOST_DEVICE __host__ __device__ __forceinline__

namespace staticbatch {

using cuda::std::int32_t;
using cuda::std::int64_t;
using cuda::std::uint32_t;
using cuda::std::uint64_t;

constexpr int32_t kInt32Max = 2147483647;

template <typename T>
SB_HOST_DEVICE constexpr T ceil_div(T a, T b) { return (a + b - 1) / b; }

// A tile shape as compile-time constants: TileShape<128, 256> is 128 rows by 256 columns.
template <int... kTileShape>
struct TileShape {
  static constexpr int kNdim = sizeof...(kTileShape);
  static constexpr int64_t kShape[kNdim] = {kTileShape...};
};

// (task, tile within task) as found by a mapper.
struct TaskTile {
  int32_t task;
  int32_t index;
};

}  // namespace staticbatch
