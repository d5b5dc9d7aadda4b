// staticbatch: building a plan on the device from sizes that live on the device.
//
// One block walks the tasks in chunks of its size, carrying a running total: tile counts
// (ceil over each dimension, multiplied) and row counts (sizes[:, 0]) are scanned in
// 64 bits and written as the plan's prefix sums. No host sync; the launch shape depends
// only on the number of tasks, so the build can be captured in a CUDA graph and replayed
// with new sizes.
//
// Errors cannot be raised from here without a sync, so they are recorded in `status`:
//   bit 0 (kStatusNegativeSize): a size was negative (the task got zero tiles);
//   bit 1 (kStatusTileOverflow): the total tile count passed INT32_MAX (offsets saturate
//                                there, so the tiles past it never run).
// DevicePlan.check() reads it on the host when the caller wants to pay for the sync.
#pragma once

#include <staticbatch/common.cuh>

namespace staticbatch {

constexpr int32_t kStatusNegativeSize = 1;
constexpr int32_t kStatusTileOverflow = 2;

// Inclusive scan of one int64 per thread across the block (blockDim.x a multiple of 32,
// at most 1024). `scratch` holds 32 int64.
SB_DEVICE int64_t block_inclusive_scan(int64_t v, int64_t* scratch) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int num_warps = blockDim.x >> 5;
#pragma unroll
  for (int d = 1; d < 32; d <<= 1) {
    const int64_t u = __shfl_up_sync(0xffffffffu, v, d);
    if (lane >= d) v += u;
  }
  if (lane == 31) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    int64_t w = lane < num_warps ? scratch[lane] : 0;
#pragma unroll
    for (int d = 1; d < 32; d <<= 1) {
      const int64_t u = __shfl_up_sync(0xffffffffu, w, d);
      if (lane >= d) w += u;
    }
    if (lane < num_warps) scratch[lane] = w;
  }
  __syncthreads();
  if (warp > 0) v += scratch[warp - 1];
  __syncthreads();  // scratch is reused by the next call
  return v;
}

template <class Shape, typename SizeT>
SB_DEVICE void build_plan(const SizeT* sizes_in, int64_t stride_task, int64_t stride_dim,
                          int32_t num_tasks, int32_t* tile_offsets, int64_t* sizes_out,
                          int64_t* task_starts, int32_t* status) {
  constexpr int kNdim = Shape::kNdim;
  __shared__ int64_t scratch[32];
  __shared__ int32_t block_status;
  if (threadIdx.x == 0) block_status = 0;
  __syncthreads();
  int64_t tiles_before = 0;
  int64_t rows_before = 0;
  int32_t my_status = 0;
  for (int32_t base = 0; base < num_tasks; base += static_cast<int32_t>(blockDim.x)) {
    const int32_t task = base + static_cast<int32_t>(threadIdx.x);
    int64_t tiles = 0;
    int64_t rows = 0;
    if (task < num_tasks) {
      tiles = 1;
#pragma unroll
      for (int d = 0; d < kNdim; ++d) {
        int64_t s = static_cast<int64_t>(sizes_in[task * stride_task + d * stride_dim]);
        if (s < 0) {
          my_status |= kStatusNegativeSize;
          s = 0;
        }
        sizes_out[static_cast<int64_t>(task) * kNdim + d] = s;
        if (d == 0) rows = s;
        // Clamp each factor so the product cannot wrap int64; any clamped value already
        // overflows int32 and is reported below.
        const int64_t n = ceil_div<int64_t>(s, Shape::kShape[d]);
        tiles = tiles * (n > kInt32Max ? static_cast<int64_t>(kInt32Max) + 1 : n);
        if (tiles > kInt32Max) tiles = static_cast<int64_t>(kInt32Max) + 1;
      }
    }
    const int64_t tile_incl = block_inclusive_scan(tiles, scratch) + tiles_before;
    const int64_t row_incl = block_inclusive_scan(rows, scratch) + rows_before;
    if (task < num_tasks) {
      const int64_t start = tile_incl - tiles;
      if (tile_incl > kInt32Max) my_status |= kStatusTileOverflow;
      tile_offsets[task] = static_cast<int32_t>(start > kInt32Max ? kInt32Max : start);
      task_starts[task] = row_incl - rows;
    }
    // The last thread of the chunk holds the chunk's totals; broadcast them.
    __shared__ int64_t carry[2];
    if (threadIdx.x == blockDim.x - 1) {
      carry[0] = tile_incl;
      carry[1] = row_incl;
    }
    __syncthreads();
    tiles_before = carry[0];
    rows_before = carry[1];
    // Saturate so that repeated overflow cannot wrap int64 over millions of tasks.
    if (tiles_before > kInt32Max) tiles_before = static_cast<int64_t>(kInt32Max) + 1;
    __syncthreads();
  }
  if (my_status) atomicOr(&block_status, my_status);
  __syncthreads();
  if (threadIdx.x == 0) {
    tile_offsets[num_tasks] = static_cast<int32_t>(tiles_before > kInt32Max ? kInt32Max : tiles_before);
    task_starts[num_tasks] = rows_before;
    status[0] = block_status;
  }
}

}  // namespace staticbatch
