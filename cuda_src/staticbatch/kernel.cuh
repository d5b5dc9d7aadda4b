// staticbatch: the persistent loop over the tiles of a plan.
//
// Every generated kernel is
//     for (tile = blockIdx.x; tile < total; tile += gridDim.x) {
//         (task, index) = mapper.map(tile);  body(Tile{...});  __syncthreads();
//     }
// The total is read from device memory, so a plan built on the device (and replayed in a
// CUDA graph with new sizes) needs no host sync: the grid only bounds the parallelism.
#pragma once

#include <staticbatch/common.cuh>
#include <staticbatch/mapper.cuh>

namespace staticbatch {

// The plan as the kernel sees it (device pointers).
struct PlanView {
  const int32_t* tile_offsets;  // [num_tasks + 1], exclusive prefix sum of tiles per task
  const int64_t* sizes;         // [num_tasks, kNdim], each task's size along each dimension
  const int64_t* task_starts;   // [num_tasks + 1], exclusive prefix sum of sizes[:, 0]
  int32_t num_tasks;
};

// One tile of one task, handed to a task kind's tile body.
template <int kNdim>
struct Tile {
  int32_t id;            // global tile id in [0, total tiles)
  int32_t task;          // task index in the plan
  int32_t index;         // tile index within the task, row-major over `coord`
  int32_t coord[kNdim];  // tile coordinate along each dimension
  int64_t size[kNdim];   // the task's size along each dimension
  int64_t start;         // task_starts[task]: where the task's rows begin (64-bit)
};

template <class Shape>
SB_DEVICE Tile<Shape::kNdim> make_tile(const PlanView& plan, int32_t tile_id, TaskTile tt) {
  constexpr int kNdim = Shape::kNdim;
  Tile<kNdim> t;
  t.id = tile_id;
  t.task = tt.task;
  t.index = tt.index;
  t.start = plan.task_starts[tt.task];
  int32_t rest = tt.index;
#pragma unroll
  for (int d = kNdim - 1; d >= 0; --d) {
    t.size[d] = plan.sizes[static_cast<int64_t>(tt.task) * kNdim + d];
    const int32_t tiles_d = static_cast<int32_t>(ceil_div<int64_t>(t.size[d], Shape::kShape[d]));
    t.coord[d] = d == 0 ? rest : rest % tiles_d;
    rest = d == 0 ? 0 : rest / tiles_d;
  }
  return t;
}

// Runs `body(tile)` for every tile of the plan that this block owns. All threads of the
// block must call it. The __syncthreads() between tiles keeps one tile's shared-memory
// reads from racing with the next tile's writes.
template <class Shape, class Mapper, class Body>
SB_DEVICE void for_each_tile(const PlanView& plan, Body&& body) {
  Mapper mapper(plan.tile_offsets, plan.num_tasks);
  const int32_t total = plan.tile_offsets[plan.num_tasks];
  for (int32_t tile = static_cast<int32_t>(blockIdx.x); tile < total;
       tile += static_cast<int32_t>(gridDim.x)) {
    const TaskTile tt = mapper.map(tile);
    body(make_tile<Shape>(plan, tile, tt));
    __syncthreads();
  }
}

// Dynamic shared memory of the block, 128-byte aligned.
template <typename T>
SB_DEVICE T* dynamic_smem() {
  extern __shared__ __align__(128) unsigned char sb_dynamic_smem[];
  return reinterpret_cast<T*>(sb_dynamic_smem);
}

}  // namespace staticbatch
