// staticbatch: both expert GEMMs of an MoE layer in one persistent launch, for decode.
//
// Problem. The plan's tasks as in grouped_gemm.cuh (task t: m = task_rows[t] grouped rows from
// task_starts[t], expert task_expert[t]). For every grouped row r of expert e:
//     mid[r, :] = silu_and_mul(x[gather_idx[r], :] @ w1[e].T)     GEMM 1: N = 2I, K = H
//     out[r, :] = mid[r, :] @ w2[e].T                             GEMM 2: N = H,  K = I
// w1 is [E, 2I, H] in the interleaved gate/up layout of grouped_gemm.cuh, w2 [E, H, I]; x
// [T, H] (row stride ldx), mid [M, I] and out [M, H] contiguous; bf16 or fp16, fp32
// accumulation. The result is bit-identical to grouped_gemm's two launches in swap mode (the
// same K order per output element).
//
// Why one launch. At decode each GEMM streams its weights once, and a launch alone does not
// keep the memory busy: it ramps up (plan reads, first loads), and its last tiles leave SMs
// idle (Qwen3-30B-A3B at T = 1: 96 gate/up tiles for 132 SMs; each GEMM alone streamed at
// 1.9-3.2 TB/s on the H200, 2026-11-28). Here GEMM 2's weights stream while GEMM 1 finishes.
//
// Tiles. Swap mode only (the weight on wgmma's M side, BLOCK_M tokens on its N side; see
// grouped_gemm.cuh), one shape for both GEMMs. Global tile ids [0, total1) are GEMM 1's tiles
// (tile_offsets1, built for n = 2I), [total1, total1 + total2) GEMM 2's (tile_offsets2, n = H).
// A persistent grid strides over all of them, so every block runs its GEMM 1 tiles before its
// GEMM 2 tiles.
//
// Dependency. A GEMM 2 tile of (task, m-block) reads the mid rows that all n1 = ceil(2I /
// BLOCK_N) GEMM 1 tiles of that (task, m-block) write. Flag f = tile_offsets1[task] / n1 +
// m_block (the m-blocks of GEMM 1 in tile order) counts the consumer warp groups that have
// stored their part: after its epilogue's global stores each group fences (fence.acq_rel.gpu
// in every thread), syncs, and thread 0 adds 1 with a release atomic. The tile is ready at
// n1 * kNumConsumers. Only GEMM 2's token rows wait: the producer issues each stage's weight
// TMA at once and keeps the stage's token copy pending until the flag is seen (an acquire load
// per thread, then fence.acq_rel.gpu), so the ring fills with GEMM 2's weights while GEMM 1's
// tiles finish. Before the producer would block on a ring slot (its consumers are waiting for a
// pending stage) it waits for the flag and copies the pending rows.
//
// Token rows. Both GEMMs copy them with 16-byte cp.async by the 128 producer threads (rows of
// x through gather_idx for GEMM 1, rows of mid in place for GEMM 2), swizzled by hand as in
// grouped_gemm.cuh; each thread arrives on the stage's full barrier with
// cp.async.mbarrier.arrive.noinc (count 128, plus thread 0's expect_tx for the weight tile).
//
// Deadlock freedom. A GEMM 1 tile waits for nothing but its own block's ring. A GEMM 2 tile
// waits for GEMM 1 tiles, which every block runs before its own GEMM 2 tiles; so the wait ends
// once all blocks are resident. The grid is at most one block per SM (each block takes more
// than half an SM's shared memory), and the host launches no more blocks than SMs.
//
// Counters. counters[0] counts exited blocks, counters[1 + f] are the flags. All must be zero
// at launch. The last block to exit (its exit arrival is the grid's last: every other block
// has done all its flag reads and writes) zeroes them again, so a per-stream buffer serves
// every launch (as split-K's counters do).
#pragma once

#include <staticbatch/moe/grouped_gemm.cuh>

namespace staticbatch {
namespace moe {

// One K step of a swap-mode token tile by cp.async: token rows r = row0 + 16 i of the tile,
// 128 bytes each (K columns [k_elem, k_elem + 64) of source row src_row[i], -1 for none), into
// the 128-byte-swizzled stage at x_base (chunk c of row r at c ^ (r % 8)); rows without a source
// and columns at or past k are zero-filled. Then this thread arrives on the stage's barrier.
template <int kRows, int kRowsPerThread>
SB_DEVICE void copy_token_step(uint32_t x_base, uint64_t* full, const uint16_t* src, int64_t ld,
                               const int32_t (&src_row)[kRowsPerThread], int32_t row0, int32_t chunk, int32_t k_elem,
                               int32_t k) {
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i) {
    const int32_t r = row0 + 16 * i;
    if (r < kRows) {
      const int32_t kc = k_elem + chunk * 8;
      const bool valid = src_row[i] >= 0 && kc < k;  // K % 8 == 0: a chunk is all in or all out
      const uint16_t* p = valid ? src + static_cast<int64_t>(src_row[i]) * ld + kc : src;
      ptx::cp_async_16(x_base + static_cast<uint32_t>(r * 128 + ((chunk ^ (r & 7)) << 4)), p, valid ? 16u : 0u);
    }
  }
  ptx::cp_async_mbarrier_arrive_noinc(full);
}

template <bool kBf16, int BLOCK_M, int BLOCK_N, int kStages>
SB_DEVICE void grouped_mlp(const ptx::TmaDescriptor& w1_map, const ptx::TmaDescriptor& w2_map, const void* x_ptr,
                           int64_t ldx, void* mid_ptr, void* out_ptr, const int32_t* gather_idx,
                           const int32_t* tile_offsets1, const int32_t* tile_offsets2, const int32_t* task_rows,
                           const int64_t* task_starts, const int32_t* task_expert, int32_t num_tasks, int32_t hidden,
                           int32_t inter, uint32_t* counters) {
  using Shape = GemmShape<BLOCK_M, BLOCK_N, kStages, true, false>;
  using Storage = typename Shape::SharedStorage;
  using Ops = ElemOps<kBf16>;
  constexpr int kNumConsumers = Shape::kNumConsumers;
  constexpr int kRowsPerThread = Shape::kRowsPerProducerThread;
  static_assert(Shape::kCopyChunks == 1 && Shape::kCopyRowStep == 16, "one 16-byte chunk per thread and row");

  Storage& ss = aligned_storage<Storage>();

  const int32_t warp = ptx::warp_id_uniform();
  const int32_t lane = static_cast<int32_t>(threadIdx.x & 31);
  const int32_t warp_group = warp / 4;

  // The plan's lines on their way to L2 (see grouped_gemm.cuh).
  if (warp == 1) prefetch_plan(lane, num_tasks, tile_offsets1, tile_offsets2, task_rows, task_expert, task_starts, gather_idx);
  // 128 cp.async arrivals + the weight's expect_tx; one empty arrival per consumer warp.
  if (threadIdx.x == 0) init_ring<kStages>(ss, 128 + 1, Shape::kStageConsumerWarps);
  if (threadIdx.x == 32) {
    ptx::tma_prefetch_descriptor(&w1_map);
    ptx::tma_prefetch_descriptor(&w2_map);
  }
  ptx::griddep_launch_dependents();
  __syncthreads();
  ptx::griddep_wait();  // the plan may come from the kernel before

  const int32_t total1 = __ldg(tile_offsets1 + num_tasks);
  const int32_t total = total1 + __ldg(tile_offsets2 + num_tasks);
  const int32_t n1_blocks = ceil_div<int32_t>(2 * inter, BLOCK_N);
  const int32_t k1_blocks = ceil_div<int32_t>(hidden, BLOCK_K);
  const int32_t k2_blocks = ceil_div<int32_t>(inter, BLOCK_K);
  const uint32_t ready_count = static_cast<uint32_t>(n1_blocks * kNumConsumers);
  uint32_t* const flags = counters + 1;
  // Flag of GEMM 1's (task, m_block): its m-blocks in tile order.
  auto flag_of = [&](int32_t task, int32_t m_block) {
    return flags + (__ldg(tile_offsets1 + task) / n1_blocks + m_block);
  };
  const auto* mid = static_cast<uint16_t*>(mid_ptr);

  if (warp_group == 0) {
    // ------------------------------------------------------------------ producer
    if constexpr (kNumConsumers == 2) ptx::setmaxnreg_dec<kProducerRegs>();
    const auto* x = static_cast<const uint16_t*>(x_ptr);
    const int32_t t = static_cast<int32_t>(threadIdx.x);  // 0..127
    const int32_t chunk = t & 7;                            // 16-byte chunk of the 128-byte row
    const int32_t row0 = t >> 3;                            // rows row0, row0 + 16, ...
    WarpSearchMapper map1(tile_offsets1, num_tasks), map2(tile_offsets2, num_tasks);
    uint32_t it = 0;  // running K step over all tiles of this block
    for (int32_t tile = static_cast<int32_t>(blockIdx.x); tile < total; tile += static_cast<int32_t>(gridDim.x)) {
      const bool second = tile >= total1;
      const TaskTile tt = second ? map2.map(tile - total1) : map1.map(tile);
      const TileCoord tc =
          locate_tile<BLOCK_M>(tt, task_rows, task_starts, task_expert, second ? k2_blocks : k1_blocks);
      const int32_t tile_row0 = tc.m_block * BLOCK_M;
      const int32_t x_rows = tc.m - tile_row0 < BLOCK_M ? tc.m - tile_row0 : BLOCK_M;
      int32_t src_row[kRowsPerThread];
#pragma unroll
      for (int i = 0; i < kRowsPerThread; ++i) {
        const int32_t r = row0 + 16 * i;
        const int64_t grouped = tc.start + tile_row0 + r;  // < 2^31: rows are
        src_row[i] = r >= x_rows ? -1 : (second ? static_cast<int32_t>(grouped) : __ldg(gather_idx + grouped));
      }
      const uint16_t* src = second ? mid : x;
      const int64_t ld = second ? static_cast<int64_t>(inter) : ldx;
      const int32_t kdim = second ? inter : hidden;
      const ptx::TmaDescriptor* w_map = second ? &w2_map : &w1_map;
      const uint32_t* flag = second ? flag_of(tt.task, tc.m_block) : nullptr;
      bool ready = !second;
      int32_t pending = -1;  // first K step of this tile whose token rows wait for the flag
      const uint32_t it0 = it;
      // Waits for GEMM 1's rows of this tile, then copies the pending steps [pending, end), if any.
      auto flush = [&](int32_t end) {
        while (ptx::ld_acquire_gpu_u32(flag) < ready_count) ptx::nanosleep(32);
        ptx::fence_acq_rel_gpu();
        for (int32_t j = pending < 0 ? end : pending; j < end; ++j) {
          const uint32_t s = (it0 + static_cast<uint32_t>(j)) % kStages;
          copy_token_step<BLOCK_M>(ptx::smem_addr(ss.x[s]), &ss.full[s], src, ld, src_row, row0, chunk, j * BLOCK_K,
                                   kdim);
        }
        pending = -1;
        ready = true;
      };
      for (int32_t kb = 0; kb < tc.k_blocks; ++kb, ++it) {
        const uint32_t s = it % kStages;
        const uint32_t phase = (it / kStages) & 1u;
        // About to wait for a slot while steps of this tile lack their rows: the consumers may
        // be waiting for exactly those, so get the rows first.
        if (pending >= 0 && !ptx::mbarrier_try_wait(&ss.empty[s], phase ^ 1u)) flush(kb);
        ptx::mbarrier_wait(&ss.empty[s], phase ^ 1u);
        if (t == 0) {
          ptx::mbarrier_arrive_expect_tx(&ss.full[s], Shape::kWBytes);
          ptx::tma_load_3d(ptx::smem_addr(ss.w[s]), w_map, &ss.full[s], kb * BLOCK_K, tc.n_block * BLOCK_N, tc.expert);
        }
        if (!ready && ptx::ld_acquire_gpu_u32(flag) >= ready_count) flush(kb);
        if (ready) {
          copy_token_step<BLOCK_M>(ptx::smem_addr(ss.x[s]), &ss.full[s], src, ld, src_row, row0, chunk, kb * BLOCK_K,
                                   kdim);
        } else if (pending < 0) {
          pending = kb;
        }
      }
      if (pending >= 0) flush(tc.k_blocks);
    }
    ptx::cp_async_wait_all();
  } else {
    // ------------------------------------------------------------------ consumers
    if constexpr (kNumConsumers == 2) ptx::setmaxnreg_inc<kConsumerRegs>();
    const int32_t cw = warp_group - 1;  // weight rows [64 cw, 64 cw + 64) of each tile
    const int32_t warp_in_group = warp & 3;
    const int32_t tid = static_cast<int32_t>(threadIdx.x) - 128 * warp_group;
    const uint32_t bar_id = kEpilogueBarrier + static_cast<uint32_t>(cw);
    const uint32_t epi_base = ptx::smem_addr(ss.epi[cw]);
    auto* out = static_cast<typename Ops::elem*>(out_ptr);
    auto* mid_out = static_cast<typename Ops::elem*>(mid_ptr);
    WarpSearchMapper map1(tile_offsets1, num_tasks), map2(tile_offsets2, num_tasks);
    uint32_t it = 0;
    uint32_t chunk_count = 0;
    float acc[Shape::kAccum];
#pragma unroll
    for (int i = 0; i < Shape::kAccum; ++i) acc[i] = 0.0f;
    for (int32_t tile = static_cast<int32_t>(blockIdx.x); tile < total; tile += static_cast<int32_t>(gridDim.x)) {
      const bool second = tile >= total1;
      const TaskTile tt = second ? map2.map(tile - total1) : map1.map(tile);
      const TileCoord tc =
          locate_tile<BLOCK_M>(tt, task_rows, task_starts, task_expert, second ? k2_blocks : k1_blocks);
      uint32_t prev_stage = 0;
      for (int32_t kb = 0; kb < tc.k_blocks; ++kb, ++it) {
        const uint32_t s = it % kStages;
        ptx::mbarrier_wait(&ss.full[s], (it / kStages) & 1u);
        const uint64_t desc_a = ptx::make_smem_desc_k_sw128(ptx::smem_addr(ss.w[s]) + cw * 64 * 128);
        const uint64_t desc_b = ptx::make_smem_desc_k_sw128(ptx::smem_addr(ss.x[s]));
#pragma unroll
        for (int i = 0; i < Shape::kAccum; ++i) ptx::fence_operand(acc[i]);
        ptx::wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < BLOCK_K / 16; ++kk) {
          ptx::wgmma_m64k16<Shape::kWgmmaN, kBf16>(acc, desc_a + 2 * kk, desc_b + 2 * kk, (kb > 0 || kk > 0) ? 1 : 0);
        }
        ptx::wgmma_commit_group();
#pragma unroll
        for (int i = 0; i < Shape::kAccum; ++i) ptx::fence_operand(acc[i]);
        ptx::wgmma_wait_group<1>();
        if (kb > 0 && lane == 0) ptx::mbarrier_arrive(&ss.empty[prev_stage]);
        prev_stage = s;
      }
      ptx::wgmma_wait_group<0>();
#pragma unroll
      for (int i = 0; i < Shape::kAccum; ++i) ptx::fence_operand(acc[i]);
      if (lane == 0) ptx::mbarrier_arrive(&ss.empty[prev_stage]);
      if (second) {
        epilogue_swap<Ops, BLOCK_M, BLOCK_N, false>(acc, epi_base, chunk_count, bar_id, tc, cw, hidden, out,
                                                    warp_in_group, lane, tid);
      } else {
        epilogue_swap<Ops, BLOCK_M, BLOCK_N, true>(acc, epi_base, chunk_count, bar_id, tc, cw, inter, mid_out,
                                                   warp_in_group, lane, tid);
        // Publish this group's part of the mid rows (see "Dependency" above).
        ptx::fence_acq_rel_gpu();
        ptx::named_barrier_sync(bar_id, 128);
        if (tid == 0) ptx::atomic_add_acq_rel_gpu(flag_of(tt.task, tc.m_block), 1u);
      }
    }
  }

  // Exit: the grid's last block zeroes the counters for the next launch (see "Counters").
  __syncthreads();
  bool last = false;
  if (threadIdx.x == 0) last = ptx::atomic_add_acq_rel_gpu(counters, 1u) == gridDim.x - 1;
  if (__syncthreads_or(last)) {
    ptx::fence_acq_rel_gpu();
    const int32_t num_flags = total1 / n1_blocks;
    for (int32_t i = static_cast<int32_t>(threadIdx.x); i < num_flags; i += static_cast<int32_t>(blockDim.x)) {
      ptx::st_relaxed_gpu_u32(flags + i, 0u);
    }
    if (threadIdx.x == 0) ptx::st_relaxed_gpu_u32(counters, 0u);
  }
}

}  // namespace moe
}  // namespace staticbatch
