// staticbatch: device-side mappers from a global tile id to (task, tile within the task).
//
// A plan stores `tile_offsets`, the exclusive prefix sum of tile counts over tasks
// (int32, [num_tasks + 1]; tile_offsets[num_tasks] is the total). Task i owns the tiles
// [tile_offsets[i], tile_offsets[i + 1]). Empty tasks own nothing, and every mapper skips
// them: it returns the one task whose range holds the tile id.
//
// Both mappers have Python twins in staticbatch/mappers.py that compute exactly the same
// (task, index) for every tile id; tests check them bitwise against each other.
//
// Contract for every mapper: all threads of a warp call `map` together (the warp scan
// uses ballots), with the same tile id, and tile ids passed to one mapper object never
// decrease (the persistent loop visits tiles in increasing order; the binary search uses
// this to narrow its range).
#pragma once

#include <staticbatch/common.cuh>

namespace staticbatch {

// Binary search over tile_offsets in global memory: O(log num_tasks) loads, any number of
// tasks. The default mapper.
struct BinarySearchMapper {
  const int32_t* offsets;
  int32_t num_tasks;
  int32_t lo;  // every task before `lo` ends at or before the last tile id mapped

  SB_DEVICE BinarySearchMapper(const int32_t* tile_offsets, int32_t num_tasks_)
      : offsets(tile_offsets), num_tasks(num_tasks_), lo(0) {}

  // Requires 0 <= tile_id < tile_offsets[num_tasks].
  SB_DEVICE TaskTile map(int32_t tile_id) {
    // Last task i in [lo, num_tasks - 1] with offsets[i] <= tile_id. Empty tasks share
    // their start with the next task, so the last such i is never empty.
    int32_t a = lo;
    int32_t b = num_tasks - 1;
    while (a < b) {
      const int32_t mid = a + (b - a + 1) / 2;
      if (__ldg(offsets + mid) <= tile_id) {
        a = mid;
      } else {
        b = mid - 1;
      }
    }
    lo = a;
    return TaskTile{a, tile_id - __ldg(offsets + a)};
  }
};

// Warp-cooperative 32-ary search over tile_offsets in global memory: each step, lane l
// compares the pivot offsets[a + l * stride] (one coalesced load for the warp) and a ballot
// narrows the range 32-fold; a last step compares 32 neighbours. ceil(log32(num_tasks)) + 1
// dependent loads instead of the binary search's log2(num_tasks): any number of tasks.
struct WarpSearchMapper {
  const int32_t* offsets;
  int32_t num_tasks;
  int32_t lo;  // as in BinarySearchMapper: tile ids never decrease

  SB_DEVICE WarpSearchMapper(const int32_t* tile_offsets, int32_t num_tasks_)
      : offsets(tile_offsets), num_tasks(num_tasks_), lo(0) {}

  SB_DEVICE TaskTile map(int32_t tile_id) {
    const int32_t lane = static_cast<int32_t>(threadIdx.x & 31);
    // Invariant: the answer (last i with offsets[i] <= tile_id) lies in [a, b].
    int32_t a = lo;
    int32_t b = num_tasks - 1;
    while (b - a >= 32) {
      const int32_t stride = (b - a + 32) / 32;  // ceil((b - a + 1) / 32)
      const int32_t idx = a + lane * stride;     // lane 0 probes a itself: always true
      const bool le = idx <= b && __ldg(offsets + idx) <= tile_id;
      // Offsets never decrease, so the true lanes are 0 .. c-1.
      const int32_t c = __popc(__ballot_sync(0xffffffffu, le));
      a += (c - 1) * stride;
      b = min(b, a + stride - 1);
    }
    const int32_t idx = a + lane;
    const int32_t v = idx <= b ? __ldg(offsets + idx) : kInt32Max;
    const int32_t c = __popc(__ballot_sync(0xffffffffu, v <= tile_id));
    const int32_t start = __shfl_sync(0xffffffffu, v, c - 1);
    a += c - 1;
    lo = a;
    return TaskTile{a, tile_id - start};
  }
};

// Warp-cooperative scan: lane l of the warp holds the inclusive tile prefix sums (the
// end of each task) of tasks l, 32 + l, ..., 32 * (kSlots - 1) + l in registers. The task
// of a tile is the number of tasks that end at or before it:
//   sum over slots of popc(ballot(end[slot] <= tile_id))
// kSlots steps, no shared memory, no divergence. Holds at most 32 * kSlots tasks; the
// host refuses larger plans for this mapper.
template <int kSlots>
struct WarpScanMapper {
  static constexpr int32_t kMaxTasks = 32 * kSlots;
  const int32_t* offsets;
  int32_t ends[kSlots];

  SB_DEVICE WarpScanMapper(const int32_t* tile_offsets, int32_t num_tasks) : offsets(tile_offsets) {
    const int32_t lane = static_cast<int32_t>(threadIdx.x & 31);
#pragma unroll
    for (int s = 0; s < kSlots; ++s) {
      const int32_t task = s * 32 + lane;
      ends[s] = task < num_tasks ? __ldg(tile_offsets + task + 1) : kInt32Max;
    }
  }

  SB_DEVICE TaskTile map(int32_t tile_id) {
    int32_t task = 0;
#pragma unroll
    for (int s = 0; s < kSlots; ++s) {
      task += __popc(__ballot_sync(0xffffffffu, ends[s] <= tile_id));
    }
    return TaskTile{task, tile_id - __ldg(offsets + task)};
  }
};

}  // namespace staticbatch
