// staticbatch: MoE routing on the device — expert selection, the routing plan, the combine.
//
// Four small kernels replace a chain of ~30 torch operations per layer; none needs a host
// sync, so a layer (router GEMM, select, plan, two grouped GEMMs, combine) replays in a CUDA
// graph with new inputs.
//
// select_experts: one warp per token. Lane l holds the scores of experts l, l + 32, ...
//   (kPerLane = ceil(E / 32) values, E <= 1024). Top-k takes k rounds of a warp-wide maximum
//   over an order-preserving 32-bit key (redux.sync), ties going to the lowest expert id, as
//   torch.topk breaks them. Grouped top-k (DeepSeek-V3) first scores groups through shared
//   memory (one lane per group) and masks the experts of unchosen groups.
//
// The routing plan, over the flattened (token, slot) entries i = t * k + j of topk_ids:
//   route_count   chunk c (a block) counts the entries of each expert in its range of
//                 entries into hist[c][e] (shared-memory atomics: counts do not depend on order);
//   route_scan    one block: per expert the exclusive prefix over chunks, the expert counts
//                 and starts (exclusive prefix over experts), the task list heaviest first
//                 (stable: ties by expert id), and up to two tile prefix sums for the grouped
//                 GEMMs' tilings (a task of m rows has ceil(m / bm) * nb tiles, nb the tiles
//                 per block of bm rows); hist becomes each (chunk, expert)'s first grouped row;
//   route_scatter chunk c ranks its entries per expert in entry order (one sub-range per warp,
//                 __match_any_sync ranks within 32 entries) and writes gather_idx[row] = t and
//                 slot_to_row[i] = row. The grouped layout is therefore the one a stable sort
//                 by expert gives: deterministic, expert-major, (token, slot) order inside.
//   route_small   for few entries (decode): all three in one block, one launch.
//   Ids outside [0, E) (-1: not on this rank) are not counted; their slot_to_row is -1.
//
// combine: out[t] = sum_j w[t, j] * (y[slot_to_row[t, j]] + bias[id[t, j]]) in float32, slots in
//   order (deterministic, no atomics); one block per token, 8 columns (16 bytes) per thread.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda/std/limits>

#include <staticbatch/common.cuh>
#include <staticbatch/plan.cuh>

namespace staticbatch {
namespace moe {

constexpr int kMaxRouteExperts = 1024;  // experts a warp's registers and one scan block cover
constexpr int kRouteWarps = 8;          // warps per block of the count / scatter kernels

constexpr float kNegInf = -cuda::std::numeric_limits<float>::infinity();

enum Scoring : int { kSoftmax = 0, kSigmoid = 1, kSoftmaxSelected = 2 };

SB_DEVICE float to_float(float v) { return v; }
SB_DEVICE float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
SB_DEVICE float to_float(__half v) { return __half2float(v); }

// An order-preserving map of floats onto unsigned ints (-inf lowest, NaN above +inf).
SB_DEVICE uint32_t order_key(float f) {
  const uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

SB_DEVICE float warp_max(float v) {
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, d));
  return v;
}

SB_DEVICE float warp_sum(float v) {
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) v += __shfl_xor_sync(0xffffffffu, v, d);
  return v;
}

// The lane's best remaining (key, expert) over its values; `taken` marks values already chosen.
template <int kPerLane>
SB_DEVICE void lane_best(const float (&choice)[kPerLane], uint32_t taken, int32_t lane, uint32_t& key, int32_t& expert) {
  key = 0u;
  expert = kMaxRouteExperts;
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const uint32_t kj = order_key(choice[j]);
    // Strict >: among equal keys the lower j, i.e. the lower expert id, stays.
    if (!((taken >> j) & 1u) && (expert == kMaxRouteExperts || kj > key)) {
      key = kj;
      expert = lane + 32 * j;
    }
  }
}

// Warp-wide argmax of (key, expert) with ties to the lowest expert; every lane gets the result.
SB_DEVICE int32_t warp_argmax(uint32_t key, int32_t expert) {
  const uint32_t best = __reduce_max_sync(0xffffffffu, key);
  const uint32_t holders = __ballot_sync(0xffffffffu, key == best && expert < kMaxRouteExperts);
  if (__popc(holders) == 1) return __shfl_sync(0xffffffffu, expert, __ffs(holders) - 1);
  return static_cast<int32_t>(__reduce_min_sync(
      0xffffffffu, static_cast<uint32_t>(key == best && expert < kMaxRouteExperts ? expert : kMaxRouteExperts)));
}

// Per token: scores, optional group masking, top-k, weights. Writes weights [T, k] float32 and
// ids [T, k] int32. `group_scratch` is kPerLane * 32 floats of this warp's shared memory.
template <typename Logit, int kPerLane, int kScoring, bool kRenormalize, bool kGrouped>
SB_DEVICE void select_token(const Logit* logits, int32_t num_experts, int32_t top_k, int32_t num_groups,
                            int32_t topk_group, const float* bias, float scale, float* weights_out, int32_t* ids_out,
                            float* group_scratch, int32_t lane) {
  float score[kPerLane];
  float choice[kPerLane];
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const int32_t e = lane + 32 * j;
    score[j] = e < num_experts ? to_float(logits[e]) : kNegInf;
  }
  if constexpr (kScoring == kSoftmax) {
    float m = kNegInf;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) m = fmaxf(m, score[j]);
    m = warp_max(m);
    float s = 0.0f;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      score[j] = lane + 32 * j < num_experts ? __expf(score[j] - m) : 0.0f;
      s += score[j];
    }
    const float inv = 1.0f / warp_sum(s);
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) score[j] *= inv;
  } else if constexpr (kScoring == kSigmoid) {
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) score[j] = 1.0f / (1.0f + __expf(-score[j]));
  }
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    const int32_t e = lane + 32 * j;
    choice[j] = e < num_experts ? score[j] + (bias != nullptr ? bias[e] : 0.0f) : kNegInf;
  }
  uint32_t taken = 0u;
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    if (lane + 32 * j >= num_experts) taken |= 1u << j;
  }
  if constexpr (kGrouped) {
    // Group g holds experts [g * size, (g + 1) * size). Its score: the sum of its two best
    // choices with a correction bias (DeepSeek-V3), else its best one.
    const int32_t size = num_experts / num_groups;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) group_scratch[lane + 32 * j] = choice[j];
    __syncwarp();
    float gscore = kNegInf;
    if (lane < num_groups) {
      float b1 = kNegInf, b2 = kNegInf;
      for (int32_t i = 0; i < size; ++i) {
        const float v = group_scratch[lane * size + i];
        if (v > b1) {
          b2 = b1;
          b1 = v;
        } else if (v > b2) {
          b2 = v;
        }
      }
      gscore = bias != nullptr ? (size > 1 ? b1 + b2 : b1) : b1;
    }
    __syncwarp();
    uint32_t chosen = 0u;  // bit g: group g is eligible (num_groups <= 32)
    uint32_t gtaken = lane < num_groups ? 0u : 1u;
    for (int32_t r = 0; r < topk_group; ++r) {
      const uint32_t key = gtaken ? 0u : order_key(gscore);
      const int32_t g = warp_argmax(key, gtaken ? kMaxRouteExperts : lane);
      chosen |= 1u << g;
      if (lane == g) gtaken = 1u;
    }
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int32_t e = lane + 32 * j;
      if (e < num_experts && !((chosen >> (e / size)) & 1u)) taken |= 1u << j;
    }
  }
  // Top-k: lane r keeps slot r's expert and weight.
  int32_t my_id = -1;
  float my_w = 0.0f;
  for (int32_t r = 0; r < top_k; ++r) {
    uint32_t key;
    int32_t expert;
    lane_best<kPerLane>(choice, taken, lane, key, expert);
    const int32_t win = warp_argmax(key, expert);
    const int32_t owner = win & 31;
    const int32_t slot = win >> 5;
    float w = 0.0f;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      if (j == slot) w = score[j];
    }
    w = __shfl_sync(0xffffffffu, w, owner);
    if (lane == owner) taken |= 1u << slot;
    if (lane == r) {
      my_id = win;
      my_w = w;
    }
  }
  const bool mine = lane < top_k;
  if constexpr (kScoring == kSoftmaxSelected) {
    // Softmax over the selected logits; slot 0 holds the largest.
    const float top = __shfl_sync(0xffffffffu, my_w, 0);
    const float ex = mine ? __expf(my_w - top) : 0.0f;
    my_w = ex / warp_sum(ex);
  } else if constexpr (kRenormalize) {
    const float s = warp_sum(mine ? my_w : 0.0f);
    my_w = my_w / (s + (kScoring == kSigmoid ? 1e-20f : 0.0f));
  }
  if (mine) {
    weights_out[lane] = my_w * scale;
    ids_out[lane] = my_id;
  }
}

template <typename Logit, int kPerLane, int kScoring, bool kRenormalize, bool kGrouped>
SB_DEVICE void select_experts(const Logit* logits, int64_t ld, int32_t num_tokens, int32_t num_experts,
                              int32_t top_k, int32_t num_groups, int32_t topk_group, const float* bias, float scale,
                              float* weights, int32_t* ids) {
  __shared__ float scratch[kGrouped ? kRouteWarps * kPerLane * 32 : 1];
  const int32_t lane = static_cast<int32_t>(threadIdx.x & 31);
  const int32_t warp = static_cast<int32_t>(threadIdx.x >> 5);
  const int32_t warps = static_cast<int32_t>(blockDim.x >> 5);
  for (int32_t t = static_cast<int32_t>(blockIdx.x) * warps + warp; t < num_tokens;
       t += static_cast<int32_t>(gridDim.x) * warps) {
    select_token<Logit, kPerLane, kScoring, kRenormalize, kGrouped>(
        logits + static_cast<int64_t>(t) * ld, num_experts, top_k, num_groups, topk_group, bias, scale,
        weights + static_cast<int64_t>(t) * top_k, ids + static_cast<int64_t>(t) * top_k,
        scratch + (kGrouped ? warp * kPerLane * 32 : 0), lane);
  }
}

// ---------------------------------------------------------------------------- routing plan
// Entries of chunk c: [c * chunk, min((c + 1) * chunk, num_entries)). hist is [num_chunks][E].

template <typename Id>
SB_DEVICE void route_count(const Id* ids, int64_t num_entries, int64_t chunk, int32_t num_experts, int32_t* hist) {
  extern __shared__ int32_t counts[];  // [E]
  for (int32_t e = static_cast<int32_t>(threadIdx.x); e < num_experts; e += static_cast<int32_t>(blockDim.x)) {
    counts[e] = 0;
  }
  __syncthreads();
  const int64_t lo = static_cast<int64_t>(blockIdx.x) * chunk;
  const int64_t hi = lo + chunk < num_entries ? lo + chunk : num_entries;
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
    const int64_t e = static_cast<int64_t>(ids[i]);
    if (e >= 0 && e < num_experts) atomicAdd(&counts[e], 1);
  }
  __syncthreads();
  int32_t* row = hist + static_cast<int64_t>(blockIdx.x) * num_experts;
  for (int32_t e = static_cast<int32_t>(threadIdx.x); e < num_experts; e += static_cast<int32_t>(blockDim.x)) {
    row[e] = counts[e];
  }
}

// The plan's per-expert and per-task outputs from the expert counts. One block of at least E
// threads (a multiple of 32, <= 1024), all of which call it; thread e < E passes the count of
// expert e and gets back the expert's first grouped row. Writes expert_counts, expert_starts
// and the task list (heaviest first, ties by expert id) and up to kPlanTilings tile prefix sums:
// tiling i (used when bm[i] > 0) gives task t ceil(m / bm[i]) * nb[i] tiles if lo[i] < m <= hi[i]
// (one class of a call with tile classes; hi[i] = INT32_MAX for no bound), else none.
constexpr int kPlanTilings = 4;
struct PlanOut {
  int32_t* expert_counts;
  int64_t* expert_starts;
  int32_t* task_expert;
  int32_t* task_rows;
  int64_t* task_starts;
  int32_t bm[kPlanTilings], nb[kPlanTilings], lo[kPlanTilings], hi[kPlanTilings];
  int32_t* tile_offsets[kPlanTilings];
};

SB_DEVICE int64_t plan_from_counts(int64_t count, int32_t num_experts, const PlanOut& o) {
  __shared__ int32_t counts[kMaxRouteExperts];
  __shared__ int32_t sorted_rows[kMaxRouteExperts];
  __shared__ int64_t scratch[32];
  const int32_t e = static_cast<int32_t>(threadIdx.x);
  const bool active = e < num_experts;
  if (active) counts[e] = static_cast<int32_t>(count);
  const int64_t start = block_inclusive_scan(active ? count : 0, scratch) - (active ? count : 0);  // syncs
  if (active) {
    o.expert_counts[e] = static_cast<int32_t>(count);
    o.expert_starts[e] = start;
    if (e == num_experts - 1) {
      o.expert_starts[num_experts] = start + count;
      o.task_starts[num_experts] = start + count;
    }
    int32_t rank = 0;
    for (int32_t other = 0; other < num_experts; ++other) {
      const int32_t c = counts[other];
      rank += (c > count || (c == count && other < e)) ? 1 : 0;
    }
    o.task_expert[rank] = e;
    o.task_rows[rank] = static_cast<int32_t>(count);
    o.task_starts[rank] = start;
    sorted_rows[rank] = static_cast<int32_t>(count);
  }
  __syncthreads();
  const int32_t rows = active ? sorted_rows[e] : 0;
#pragma unroll
  for (int pass = 0; pass < kPlanTilings; ++pass) {
    const int32_t bm = o.bm[pass];
    int32_t* offsets = o.tile_offsets[pass];
    if (bm <= 0) continue;  // uniform across the block
    const bool mine = active && rows > o.lo[pass] && rows <= o.hi[pass];
    const int64_t tiles = mine ? ceil_div<int64_t>(rows, bm) * o.nb[pass] : 0;
    const int64_t incl = block_inclusive_scan(tiles, scratch);
    if (active) {
      const int64_t first = incl - tiles;
      offsets[e] = static_cast<int32_t>(first > kInt32Max ? kInt32Max : first);
      if (e == num_experts - 1) offsets[num_experts] = static_cast<int32_t>(incl > kInt32Max ? kInt32Max : incl);
    }
  }
  return start;
}

// One block, with num_chunks * E int32 of dynamic shared memory: hist is staged there with
// coalesced loads, so the per-expert walk over chunks reads shared memory instead of issuing
// dependent global loads.
SB_DEVICE void route_scan(int32_t* hist, int32_t num_chunks, int32_t num_experts, const PlanOut& o) {
  extern __shared__ int32_t table[];  // [num_chunks][E]
  const int32_t cells = num_chunks * num_experts;
  for (int32_t i = static_cast<int32_t>(threadIdx.x); i < cells; i += static_cast<int32_t>(blockDim.x)) {
    table[i] = hist[i];
  }
  __syncthreads();
  const int32_t e = static_cast<int32_t>(threadIdx.x);
  const bool active = e < num_experts;
  int64_t count = 0;
  if (active) {
    for (int32_t c = 0; c < num_chunks; ++c) count += table[c * num_experts + e];
  }
  const int64_t start = plan_from_counts(count, num_experts, o);
  if (active) {
    int32_t row = static_cast<int32_t>(start);
    for (int32_t c = 0; c < num_chunks; ++c) {
      const int32_t v = table[c * num_experts + e];
      table[c * num_experts + e] = row;
      row += v;
    }
  }
  __syncthreads();
  for (int32_t i = static_cast<int32_t>(threadIdx.x); i < cells; i += static_cast<int32_t>(blockDim.x)) {
    hist[i] = table[i];
  }
}

// The whole plan in one block, for few entries (decode): count, plan_from_counts, then one
// warp places the entries in order, 32 at a time. Same results as count / scan / scatter.
template <typename Id>
SB_DEVICE void route_small(const Id* ids, int32_t num_entries, int32_t top_k, int32_t num_experts,
                           int32_t* gather_idx, int32_t* slot_to_row, const PlanOut& o) {
  __shared__ int32_t tally[kMaxRouteExperts];
  for (int32_t e = static_cast<int32_t>(threadIdx.x); e < num_experts; e += static_cast<int32_t>(blockDim.x)) {
    tally[e] = 0;
  }
  __syncthreads();
  for (int32_t i = static_cast<int32_t>(threadIdx.x); i < num_entries; i += static_cast<int32_t>(blockDim.x)) {
    const int64_t e = static_cast<int64_t>(ids[i]);
    if (e >= 0 && e < num_experts) atomicAdd(&tally[e], 1);
  }
  __syncthreads();
  const int32_t me = static_cast<int32_t>(threadIdx.x);
  const int64_t start = plan_from_counts(me < num_experts ? tally[me] : 0, num_experts, o);
  __syncthreads();  // every thread has read its tally
  if (me < num_experts) tally[me] = static_cast<int32_t>(start);  // now: next grouped row of each expert
  __syncthreads();
  if (threadIdx.x >= 32) return;
  const int32_t lane = static_cast<int32_t>(threadIdx.x);
  const uint32_t lower = (1u << lane) - 1u;
  for (int32_t base = 0; base < num_entries; base += 32) {
    const int32_t i = base + lane;
    const int64_t raw = i < num_entries ? static_cast<int64_t>(ids[i]) : -1;
    const int32_t e = (raw >= 0 && raw < num_experts) ? static_cast<int32_t>(raw) : -1;
    const uint32_t peers = __match_any_sync(0xffffffffu, e);
    if (i < num_entries) {
      if (e >= 0) {
        const int32_t row = tally[e] + __popc(peers & lower);
        gather_idx[row] = i / top_k;
        slot_to_row[i] = row;
      } else {
        slot_to_row[i] = -1;
      }
    }
    __syncwarp();
    if (e >= 0 && lane == __ffs(peers) - 1) tally[e] += __popc(peers);
    __syncwarp();
  }
}

template <typename Id>
SB_DEVICE void route_scatter(const Id* ids, int64_t num_entries, int64_t chunk, int32_t top_k, int32_t num_experts,
                             const int32_t* hist, int32_t* gather_idx, int32_t* slot_to_row) {
  extern __shared__ int32_t next_row[];  // [kRouteWarps][E]: the next grouped row of each expert per warp
  const int32_t lane = static_cast<int32_t>(threadIdx.x & 31);
  const int32_t warp = static_cast<int32_t>(threadIdx.x >> 5);
  const int64_t lo = static_cast<int64_t>(blockIdx.x) * chunk;
  const int64_t hi = lo + chunk < num_entries ? lo + chunk : num_entries;
  const int64_t sub = ceil_div<int64_t>(chunk, kRouteWarps * 32) * 32;  // whole rounds per warp
  const int64_t wlo = lo + warp * sub;
  const int64_t whi = wlo + sub < hi ? wlo + sub : hi;
  int32_t* mine = next_row + warp * num_experts;
  for (int32_t e = lane; e < num_experts; e += 32) mine[e] = 0;
  __syncwarp();
  // Pass 1: this warp's count per expert.
  for (int64_t base = wlo; base < whi; base += 32) {
    const int64_t i = base + lane;
    const int64_t raw = i < whi ? static_cast<int64_t>(ids[i]) : -1;
    const int32_t e = (raw >= 0 && raw < num_experts) ? static_cast<int32_t>(raw) : -1;
    const uint32_t peers = __match_any_sync(0xffffffffu, e);
    if (e >= 0 && lane == __ffs(peers) - 1) mine[e] += __popc(peers);
    __syncwarp();
  }
  __syncthreads();
  // Exclusive prefix over warps, from the chunk's first row of each expert.
  for (int32_t e = static_cast<int32_t>(threadIdx.x); e < num_experts; e += static_cast<int32_t>(blockDim.x)) {
    int32_t row = hist[static_cast<int64_t>(blockIdx.x) * num_experts + e];
#pragma unroll
    for (int w = 0; w < kRouteWarps; ++w) {
      const int32_t c = next_row[w * num_experts + e];
      next_row[w * num_experts + e] = row;
      row += c;
    }
  }
  __syncthreads();
  // Pass 2: place entries in order.
  const uint32_t lower = (1u << lane) - 1u;
  for (int64_t base = wlo; base < whi; base += 32) {
    const int64_t i = base + lane;
    const int64_t raw = i < whi ? static_cast<int64_t>(ids[i]) : -1;
    const int32_t e = (raw >= 0 && raw < num_experts) ? static_cast<int32_t>(raw) : -1;
    const uint32_t peers = __match_any_sync(0xffffffffu, e);
    if (i < whi) {
      if (e >= 0) {
        const int32_t row = mine[e] + __popc(peers & lower);
        gather_idx[row] = static_cast<int32_t>(i / top_k);
        slot_to_row[i] = row;
      } else {
        slot_to_row[i] = -1;
      }
    }
    __syncwarp();
    if (e >= 0 && lane == __ffs(peers) - 1) mine[e] += __popc(peers);
    __syncwarp();
  }
}

// ---------------------------------------------------------------------------- combine

template <typename T>
struct Vec8;
template <>
struct Vec8<__nv_bfloat16> {
  static SB_DEVICE void load(const void* p, float (&v)[8]) {
    const uint4 raw = *static_cast<const uint4*>(p);
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __bfloat1622float2(h[i]);
      v[2 * i] = f.x;
      v[2 * i + 1] = f.y;
    }
  }
  static SB_DEVICE void store(void* p, const float (&v)[8]) {
    uint4 raw;
    __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
    *static_cast<uint4*>(p) = raw;
  }
};
template <>
struct Vec8<__half> {
  static SB_DEVICE void load(const void* p, float (&v)[8]) {
    const uint4 raw = *static_cast<const uint4*>(p);
    const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __half22float2(h[i]);
      v[2 * i] = f.x;
      v[2 * i + 1] = f.y;
    }
  }
  static SB_DEVICE void store(void* p, const float (&v)[8]) {
    uint4 raw;
    __half2* h = reinterpret_cast<__half2*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) h[i] = __floats2half2_rn(v[2 * i], v[2 * i + 1]);
    *static_cast<uint4*>(p) = raw;
  }
};
template <>
struct Vec8<float> {
  static SB_DEVICE void load(const void* p, float (&v)[8]) {
    const float4* q = static_cast<const float4*>(p);
    const float4 a = q[0], b = q[1];
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
    v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
  }
  static SB_DEVICE void store(void* p, const float (&v)[8]) {
    float4* q = static_cast<float4*>(p);
    q[0] = make_float4(v[0], v[1], v[2], v[3]);
    q[1] = make_float4(v[4], v[5], v[6], v[7]);
  }
};

// y [rows, H] (Elem), out [T, H] (Out), weights [T, k] float32, slot_to_row [T, k] int32,
// bias [E, H] (Elem) indexed by ids [T, k] int32 when kBias. H % 8 == 0, 16-byte aligned rows.
template <typename Elem, typename Out, bool kBias>
SB_DEVICE void combine(const Elem* y, const int32_t* slot_to_row, const float* weights, const Elem* bias,
                       const int32_t* ids, int32_t top_k, int32_t h, Out* out) {
  const int64_t t = blockIdx.x;
  for (int32_t c = static_cast<int32_t>(threadIdx.x) * 8; c < h; c += static_cast<int32_t>(blockDim.x) * 8) {
    float acc[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[i] = 0.0f;
    for (int32_t j = 0; j < top_k; ++j) {
      const int32_t row = __ldg(slot_to_row + t * top_k + j);
      if (row < 0) continue;
      const float w = __ldg(weights + t * top_k + j);
      float v[8];
      Vec8<Elem>::load(y + static_cast<int64_t>(row) * h + c, v);
      if constexpr (kBias) {
        float b[8];
        Vec8<Elem>::load(bias + static_cast<int64_t>(__ldg(ids + t * top_k + j)) * h + c, b);
#pragma unroll
        for (int i = 0; i < 8; ++i) v[i] += b[i];
      }
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[i] = fmaf(w, v[i], acc[i]);
    }
    Vec8<Out>::store(out + t * h + c, acc);
  }
}

}  // namespace moe
}  // namespace staticbatch
