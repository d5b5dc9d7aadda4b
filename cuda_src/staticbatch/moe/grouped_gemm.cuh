// staticbatch: MoE grouped GEMM for Hopper (sm_90a), one persistent kernel for all experts.
//
// Problem. Tasks t = 0..num_tasks-1 (one per expert that received tokens; empty tasks are
// allowed and own no tiles). Task t has m = task_rows[t] rows, uses expert e = task_expert[t]
// and writes output rows [task_starts[t], task_starts[t] + m). For such an output row r the
// input row is a[gather_idx[r]] (kGather) or a[r]:
//     out[r, c] = sum_k A_row[k] * W[e, c, k]                 (no activation, c < N)
//     out[r, j] = silu(gate_j) * up_j                          (kSiluMul, j < N / 2)
// with float32 accumulation, bf16 or fp16 inputs and output.
//
// Layouts. a [T, K] row-major, row stride lda elements; w [E, N, K] contiguous (read only
// through the TMA descriptor `w_map`, a 3-D view {K, N, E} with box {64, BLOCK_N, 1} and the
// 128-byte swizzle); out [M_total, N_out] contiguous, N_out = N or N / 2 (kSiluMul).
// Alignment: K % 8 == 0, lda % 8 == 0, N % 8 == 0 (N % 16 == 0 with kSiluMul), a, w and out
// 16-byte aligned; row counts (M_total, T) below 2^31. Every row index is widened to 64 bits
// before it is multiplied by a stride.
//
// Gate/up layout for kSiluMul ("interleaved by 8"): the N = 2I weight rows are stored as
//     [gate 0:8, up 0:8, gate 8:16, up 8:16, ...]
// i.e. weight row R is gate row (R / 16) * 8 + R % 8 when R % 16 < 8, else the matching up
// row. One fixed granularity serves every tile shape: in wgmma's accumulator layout a
// thread holding column c (c % 16 < 8) of an m64nNk16 tile also holds column c + 8
// (normal mode), and a thread holding row r (r % 16 < 8) also holds row r + 8 (swap mode).
// staticbatch_moe._gemm_config.interleave_gate_up builds it from vLLM's [gate; up] layout.
//
// Tiles. A task is cut into tiles of BLOCK_M token rows x BLOCK_N weight rows (the tile
// count per task is ceil(m / BLOCK_M) * ceil(N / BLOCK_N), N the weight's row count); the
// tile index within a task is m-fastest, so the blocks working on neighbouring tile ids
// share one weight tile through L2. The framework's `tile_offsets` is the exclusive prefix
// sum of those counts; a persistent grid strides over tile ids and finds (task, index)
// with WarpSearchMapper (a 32-ary warp-cooperative search: two dependent loads for up to
// 1024 tasks where the binary search needs up to ten, which a decode step's single tile per
// block pays before its first load). Every warp that maps tiles maps them with all 32 lanes.
//
// Block. One producer warp group and kNumConsumers consumer warp groups:
//   producer: thread 0 loads the weight tile of each K step with TMA (expect_tx on the
//     stage's full barrier). Token rows: without kGather thread 0 also loads them with TMA
//     (2-D map `a_map` over a [rows, K], box {64, kXBoxRows = BLOCK_M, or 64 for tall tiles, 32 or 16 for fitted ones},
//     128-byte swizzle; rows past the
//     task's m are the next task's rows or, past the end of a, zeros: harmless, their output
//     rows are masked at the store), full barrier count 1. With kGather, two methods:
//     - kTmaGather (host: gather_mode="tma"; measured slower, off by default): one TMA per token row. `a_map` is a 2-D map over a [T, K]
//       with box {64, 1}; producer thread i (of the first kGatherWarps = min(4, ceil(BLOCK_M /
//       32)) warps) reads the gather_idx entry of token row i once per tile and, each
//       K step, loads that row's 128 bytes (coordinates (kb * 64, gather_idx[row])) to
//       x + i * 128. One row per thread, not one warp looping over rows: TMA operands are
//       uniform registers, so ptxas serialises a warp's divergent TMA issues (ELECT, R2UR,
//       UTMALDG per lane); 4 warps issue on 4 schedulers at once. The 128-byte swizzle is a
//       function of the shared-memory address (chunk bits [4:6] ^= address bits [7:9]; CUDA
//       programming guide, TMA swizzle: offset (smem_ptr / 128) % 8, destination alignment
//       128 bytes), so one-row boxes at 128-byte offsets of a 1024-aligned stage land exactly
//       where the {64, BLOCK_M} box puts them. Rows past the task's m are not loaded: thread
//       0's expect_tx counts the weight tile plus 128 bytes per row actually loaded (the
//       row count of the tile is known when the tile starts), and the unloaded rows keep
//       stale bytes whose output rows are masked at the store. TMA zero-fills the columns
//       past K and counts the whole box. Full barrier count 1 (only thread 0 arrives; the
//       other threads' copies may complete before its expect_tx: tx-count may go negative).
//     - cp.async (the default): all 128 producer threads gather the token rows with 16-byte cp.async,
//       writing the 128-byte swizzle by hand (chunk c of row r goes to chunk c ^ (r % 8)),
//       rows past m zero-filled, and arrive on the same full barrier with
//       cp.async.mbarrier.arrive.noinc: count 128 + 1.
//   consumers: wgmma m64nNk16 from shared memory, K-major, 128-byte swizzle.
//     normal mode (kSwapAB = false): BLOCK_M = 64 * kNumConsumers token rows; consumer
//       warp group g computes token rows [64g, 64g + 64) x all BLOCK_N weight rows
//       (wgmma N = BLOCK_N). A 128-row tile's group whose 64 rows all lie past the task's end
//       (a "dead" group, GemmShape::kDeadSkip) issues no wgmma and stores nothing; it still
//       waits on and releases every stage like the live group (and, with store warps, hands
//       them an empty tile: their copies stop at the task's end). An expert of m rows then
//       computes at most 63 rows past m, as with 64-row tiles, while each weight stage feeds
//       128 rows. 192-row cooperative tiles (BLOCK_N <= 192, no in-loop gather, no store
//       warps) have three consumer groups the same way, and a producer of 40 registers for
//       consumers of 152 (128 * 40 + 384 * 152 <= 65536): an expert of 257-384 rows takes two
//       of them, so a 2-CTA cluster reads each of its weight tiles once.
//     tall tiles (normal mode, BLOCK_M = 256, BLOCK_N <= 192; kSlices = 2): two consumer warp
//       groups, g owning token rows [128g, 128g + 128) as two 64-row slices h = 0, 1 (rows
//       [128g + 64h, +64)), each with its own BLOCK_N / 2 accumulators; per K16 step the group
//       issues one wgmma per slice, all of a K step in one wgmma-group. A slice without rows
//       of the task (128g + 64h >= m - 256 * m_block) gets no wgmma and no epilogue: the
//       count of live slices is uniform over the warp group and picks one of three
//       instantiations of the main loop (2, 1 or 0 slices) per tile. A group with no live
//       slice still waits on each stage's full barrier before it arrives on the empty one (an
//       arrival ahead of the stage's fill would count toward the phase in progress). So an
//       expert of m rows reads each weight tile ceil(m / 256) times and computes at most 63
//       rows past m. Without kGather the producer loads one {64, 64} TMA box per live slice
//       (a_map's box is {64, 64}); the cp.async gather skips the rows of dead slices, each
//       thread copying two chunks of 8 rows (kCopyChunks) so that the row indices fit its
//       registers; the TMA gather loads rows < m only, as always.
//     ping-pong (kPingpong, normal mode, BLOCK_M = 64 or 128): two consumer warp groups, each
//       owning whole BLOCK_M x BLOCK_N tiles (a 128-row tile as two 64-row slices, BLOCK_N <=
//       192, slices without rows of the task skipped as in tall tiles); the block's tiles
//       alternate between them (g takes the block's tiles 2i + g). Named barriers order the main loops (g may start its main
//       loop only once the other has issued all of its own), so one group's epilogue runs
//       under the other's main loop. The ordering is also what makes the parity waits
//       sound: a group waits on a stage's full barrier only after the previous use of that
//       stage has been waited on (by itself or, before its turn, by the other group).
//     swap mode (kSwapAB = true, small m): the weight tile is wgmma's A side, BLOCK_N =
//       64 * kNumConsumers weight rows, consumer g computes weight rows [64g, 64g + 64) x
//       all BLOCK_M tokens (wgmma N = BLOCK_M = 8..64), and the result is stored transposed.
//     fitted swap tiles (kSwapAB, BLOCK_M = 128..256 in steps of 16; GemmShape::kFitted): the tile follows
//       its expert's row count. A task of m rows keeps ceil(m / BLOCK_M) m-blocks (the host's
//       tile counts do not change), but they hold ceil(m / m_blocks) rows each rounded up to
//       kNStep = 16, the last one the rest (locate_tile: row0, row_end), and each tile's wgmma N
//       is its row count rounded up to 16: with_fitted_n picks one of BLOCK_M / 16 main-loop
//       instantiations per tile (uniform over the warp group). An expert of 130 rows is one
//       tile of N = 144, not a full tile and a 2-row one. Without gather the token rows come in
//       {64, 32} boxes ({64, 16} where BLOCK_M is not a multiple of 32), only as many as N
//       needs (the last may read up to 16 rows past N, which no wgmma reads); the cp.async
//       gather copies N rows (zeros past the tile's rows). The epilogue stages the tokens 64 at a time (the last chunk partial
//       where BLOCK_M is not a multiple of 64) and stores rows below row_end only.
//   A ring of kStages (weight, token) stages with full/empty mbarriers; the empty barrier
//   expects one arrival per warp of the warp group(s) that consume a stage. Stage and phase
//   come from a running K-step counter that every role advances identically across tiles
//   (a ping-pong group also skips the other group's steps), so phases carry from one tile to
//   the next.
//
// Epilogue. Each consumer warp group owns two 8 KB (swap: BLOCK_M x 128 B) staging buffers
// in shared memory, used alternately (a tall tile's group stores its live slices one after
// the other through them). Output columns go out in chunks of 64 (128 bytes per
// row): the group writes its accumulators (activation applied, converted) into a buffer,
// with the 16-byte chunks of each 128-byte row XOR-swizzled by row (chunk c of row r at
// c ^ (r % 8): both the fragment writes and the row reads are bank-conflict free), syncs
// on its own named barrier, then copies rows out with coalesced 16-byte global stores
// (8 threads per 128-byte row), predicated on row < m and column < N_out (N_out % 8 == 0,
// so a 16-byte piece is all in or all out). Two buffers need one barrier per chunk: a
// thread writes a buffer again only after the next chunk's barrier, which every thread
// reaches after its reads of the buffer. Nothing else in shared memory is reused between
// tiles outside the mbarrier-guarded ring, so the tile loop needs no __syncthreads(); the
// producer keeps loading the next tile's stages while the consumers store.
//
// Store warps (kStoreWarps; host: GemmConfig.store_warps; 128-row cooperative tiles, no in-loop
// gather). A consumer warp group instead writes its whole output tile into kEpiBufs staging
// buffers (one per 64-column chunk, at least two) with no barrier between chunks, arrives on
// hardware barrier kStagedBarrier + g and goes straight to its next tile's main loop. Producer
// warps 1-3 (idle otherwise: only warp 0 walks the tiles for TMA) walk the same tiles; for each
// tile and group they sync on kStagedBarrier + g, copy the staged rows and columns out as
// epi_copy_out does, and arrive on kDrainedBarrier + g, on which the group syncs before it
// stages its next tile. bar.arrive orders the arriving threads' shared-memory stores before
// the other side's bar.sync returns (the PTX ISA's producer-consumer pattern). Each barrier
// alternates between the two sides, so no side can arrive twice in one phase; the store warps
// arrive on kDrainedBarrier only when the group has a next tile, so no arrival is left
// unmatched at exit.
//
// Split-K (kSplitK > 1, swap mode only; for decode, where a layer has fewer weight tiles
// than ~2 waves of SMs). Each (task, m-block, n-block) tile is cut into kSplitK K-slices, so
// a task has ceil(m / BLOCK_M) * ceil(N / BLOCK_N) * kSplitK tiles (the host builds
// tile_offsets from sizes (m, N, kSplitK) and tiles (BLOCK_M, BLOCK_N, 1)); within a task
// the slice is fastest: index = split + kSplitK * (m_block + m_blocks * n_block). Every
// task's count is a multiple of kSplitK, so global tile id t is slice t % kSplitK of output
// tile t / kSplitK, and the kSplitK slices of one output tile are neighbouring ids that run
// at the same time on different blocks. Slice s covers K steps [s * nk / kSplitK,
// (s + 1) * nk / kSplitK) of nk = ceil(K / 64) (the host requires kSplitK <= nk). Producer
// and consumers walk the same K range, so the ring's phases still carry across tiles.
// After its main loop each consumer warp group (splitk_reduce):
//   1. stores its fp32 accumulators to `splitk_workspace` (one slot per (tile id, group),
//      coalesced float4 rows), fence.acq_rel.gpu, then syncs its 128 threads;
//   2. thread 0 adds 1 to `splitk_counters[output tile * kNumConsumers + group]` with an
//      acq_rel GPU-scope atomic; the group that sees kSplitK - 1 is the last to arrive, resets
//      the counter to 0 and tells its threads (bar.red.or on the group's barrier); the
//      others go on to their next tile (nobody ever waits for another block: no deadlock
//      whatever the schedule);
//   3. the last group sums the kSplitK partials in slice order 0..kSplitK-1 (its own from
//      registers, the others with L2-only loads), so the result is bit-identical whichever
//      slice came last, and stores the tile through epilogue_swap (activation included).
// No float atomics. The counters must be zero at launch; every launch that runs to the end
// leaves them zero again (the host keeps one zeroed buffer per stream, see gemm.py).
//
// Clusters (kCluster = 2; host: GemmConfig.cluster=2, normal mode, no in-loop gather, no split-K,
// no tall tiles). The kernel is compiled with __cluster_dims__(2, 1, 1) and launched with a grid
// of whole clusters that are all resident at once. Cluster rank r = blockIdx.x % 2 runs tiles t
// = blockIdx.x + i * gridDim.x (gridDim.x even), so its mate runs t ^ 1 at the same position:
// both walk the same K-step sequence, stage by stage. When the two tiles share a weight tile
// (same task and n-block; tile ids are m-fastest within a task) the producer of rank r loads
// weight rows [r * BLOCK_N / 2, +BLOCK_N / 2) of each stage with one TMA multicast into both
// blocks (same shared-memory offset, complete_tx on the same barrier offset in each); otherwise
// it loads both halves into its own block (w_map's box is {64, BLOCK_N / 2, 1}). Either way a
// stage's full barrier expects the whole weight tile. Because the mate's producer may write into
// this block's stages, a stage is refilled only when both blocks' consumers have released it:
// the empty barriers expect twice the consumer warps, and each consumer warp arrives on its own
// block's barrier and, with mapa, on the mate's (plain mbarrier.arrive, release at CTA scope,
// as CUTLASS does: wgmma.wait_group has already completed the reads, and .release.cluster, which
// orders the epilogue's global stores too, measured 17-90 % slower). At a position where the
// mate has no tile (t ^ 1 >= total tiles) there is no multicast and the warp arrives twice on
// its own barrier. Before exiting, the producer waits for every stage to be released once more,
// so no remote arrival can target a block that has exited. A cluster syncs once after the
// barriers are initialised.
// Dynamic tiles (kDynamic; host: GemmConfig.dynamic, 128-row cooperative tiles or swap mode, no
// in-loop gather, no split-K; the heuristic's fitted swap tiles take them, see USE_DYNAMIC_FITTED).
// Without it block b runs tiles b, b + grid, b + 2 grid, ...; the
// tiles that share a weight block (an expert's m-blocks of one n-block) or a token block start
// together in the first wave only, and as the blocks drift apart over the waves the L2 no longer
// holds a block for its second reader (ncu on the H200: DeepSeek-V3's gate/up GEMM at T = 16384
// read 2-4x its compulsory DRAM bytes, Mixtral-8x7B's 5-8x). With it the producer's warp 0 (in a
// cluster, rank 0's) takes the next tile, or pair of tiles, from a global counter (counters[2])
// when it starts loading the tile before (the atomic's round trip then costs nothing), so
// neighbouring tiles start together whatever the drift: the blocks that take consecutive tiles
// are those that started their current tiles together. It
// publishes the tile id in a ring of kTileSlots entries in shared memory (its own CTA's and, by
// st.shared::cluster, the other CTA's), each with a full barrier (one arrival: the producer's,
// release at cluster scope for the other CTA, whose readers wait with acquire at cluster scope)
// and an empty barrier on rank 0 (one plain arrival per reader warp of both CTAs: producer warp
// 0, the consumer warps, the store warps; release at cluster scope would make every reader wait
// for its earlier global stores). Every reader warp walks the ring in order (TileRing::next),
// releasing each entry as soon as it has read it;
// an entry at or past the total ends every reader's loop, a rank-1 tile past the end beside a
// live rank-0 tile (an odd total) is skipped. The store warps read the next entry before they
// store a tile, to know whether its consumer has a next tile. When its last fetch has ended,
// each fetcher adds one to counters[3]; the last of them resets both counters to zero for the
// next launch, and in a cluster rank 0 waits until rank 1 has released the last entry before it
// exits. The counters are touched only after griddepcontrol.wait (no early weight loads), so
// consecutive launches on one stream, programmatic or not, can share them.
// Programmatic dependent launch. Every block first issues griddepcontrol.launch_dependents, so a
// kernel launched after this one as a programmatic dependent may be scheduled as blocks exit.
// Launched that way itself (host: programmatic_launch=True), the kernel runs ahead of the kernel
// before it only as far as the weight and the plan allow, which that kernel must not write:
// without gather, warp 0 of the producer maps its first tiles and issues the weight TMA loads of
// the first kStages stages (each stage's expect_tx counts weight and token bytes, so the stage
// completes only when both have landed), then waits (griddepcontrol.wait) before any token-row
// load; every other thread waits at the start, so no token row is read and no output written
// before the previous kernel has completed. Launched normally, the wait returns at once.
//
// Tile classes (host: grouped_gemm with a sequence of TileClass). One call may launch this
// kernel once per class of experts (by row count), each launch with its own tile_offsets in
// which the other classes' tasks have no tiles: the kernel never needs to know. A launch whose
// tile_offsets hold no tile at all returns right after the wait above, in every block alike
// (no staged copy, no grid barrier). The later launches of a call are programmatic dependents
// of the earlier ones; their outputs (and staged rows) are disjoint.
//
// Concurrent classes (split_role; host: _gemm_config.concurrent_pair / launch_classes). Two
// classes, normal-mode tiles for the hot experts (compute-bound under skewed routing) and fitted
// swap tiles with dynamic tiles for the others (weight streaming), share the SMs instead of
// running one after the other:
//   - hot launch (role 1): its blocks wait for the kernel before it (griddepcontrol.wait),
//     stage every row of both classes if the cold class is staged (stage_rows_by_token; the
//     grid barrier as usual), and only then issue launch_dependents. Blocks 0 .. X - 1 run its
//     tiles (stride X), the others leave. X = split_hot_blocks(both classes' tile totals, a cold
//     tile's cost in hot tiles, the SM count), the same in every block: 0 without hot tiles.
//   - cold launch (role 2, the hot one's programmatic dependent): starts on the SMs the hot
//     launch's leaving blocks free, without griddepcontrol.wait (the plan and the input were
//     written before the hot launch passed its wait, the staged rows before it passed its grid
//     barrier, whose generation word a staged cold block's thread 0 acquires before its proxy
//     fence; it runs no staged copy of its own), takes its tiles from the dynamic tile counter, so that
//     its blocks that start when the hot launch's blocks end take the tiles still left, and
//     every thread calls griddepcontrol.wait at its end: the cold launch completes after the hot
//     one, so a kernel that waits for the cold launch also waits for the hot one.
// The hot launch uses counters [0, 2) (its grid barrier), the cold one [2, 4) (the tile counter)
// of the same buffer. On the H200 (docs/performance.md, "Twenty-first session") this took both
// GEMMs at DeepSeek-V3 T = 4096 skewed from 8.88 to 7.56 ms.
//
// Staged gather (kStaged; host: gather_mode="staged", for compute-bound gate/up GEMMs). The
// cp.async gather above streams token rows into every stage of every tile, and each token
// block is read again for each of the task's N blocks; on the H200 that ran 15-50 % slower
// than the same tiles fed by TMA from grouped rows (2026-11-28). So the kernel runs in two
// phases. Phase 1: all threads of all blocks copy the grouped rows, workspace[r] =
// a[gather_idx[r]] for the rows r of every task that has tiles in this launch (with tile
// classes, only this class's tasks), each warp a few consecutive rows at a time in 16-byte
// pieces (stage_rows); or, when the host passes slot_to_row (the launch covers every task),
// token by token, each token's row read once and written to its top-k rows
// (stage_rows_by_token); then the grid meets at a barrier (grid_barrier: one arrival counter that the
// last arrival resets to zero, and a generation word it then advances; thread 0 of each
// block waits for the generation to move, then issues fence.proxy.async.global so that its
// TMA loads see the other blocks' generic-proxy stores). Phase 2 is the kernel without
// gather, its a_map a TMA map over the workspace. Every block must be resident at once: the
// grid is at most one block per SM and a block takes most of an SM's shared memory. The
// counter must be zero at launch (a zeroed buffer per stream, like split-K's); a launch that
// runs to the end leaves it zero.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <staticbatch/common.cuh>
#include <staticbatch/kernel.cuh>
#include <staticbatch/mapper.cuh>
#include <staticbatch/ptx.cuh>

namespace staticbatch {
namespace moe {

constexpr int BLOCK_K = 64;            // one 128-byte swizzled row per K step
// setmaxnreg budgets with two consumer warp groups: 128 * 56 + 256 * 224 = 64512 <= 65536.
// At 40 the cp.async gather producer ran out of registers and re-read threadIdx.x (S2R) for
// every row of every K step; that measured 7-12 % slower on the gate/up GEMM (H200, 2026-11-28).
constexpr int kProducerRegs = 56;
constexpr int kConsumerRegs = 224;
// 128-row ping-pong tiles hold a whole 128 x BLOCK_N accumulator per consumer (192 floats at
// BLOCK_N = 192), which at 224 spilled 8-12 bytes, so their producer gives up 16 more:
// 128 * 40 + 256 * 232. The heuristic runs them without an in-loop gather (staged or none),
// where the producer only walks the tiles and issues TMA loads; with the cp.async gather
// (reachable through config=) the 40 cost what they cost the 64-row tiles above.
constexpr int kLeanProducerRegs = 40;
constexpr int kWideConsumerRegs = 232;
// 192-row cooperative tiles have three consumer warp groups (one 64-row slice each):
// 128 * 40 + 384 * 152 = 63488 <= 65536.
constexpr int kTripleConsumerRegs = 152;
constexpr int kEpiCols = 64;           // output columns per epilogue chunk (128-byte rows)
// Hardware barrier ids (0 is __syncthreads): consumer g's epilogue barrier is
// kEpilogueBarrier + g, the barrier ping-pong group g waits on for its turn kOrderBarrier + g.
constexpr uint32_t kEpilogueBarrier = 1;
constexpr uint32_t kOrderBarrier = 3;
// Store warps (see "Epilogue"): consumer g signals a staged output tile on kStagedBarrier + g,
// the store warps signal its buffers free again on kDrainedBarrier + g.
constexpr uint32_t kStagedBarrier = 5;
constexpr uint32_t kDrainedBarrier = 7;
constexpr int kStoreThreads = 96;  // producer warps 1-3
// Dynamic tile scheduling (kDynamic, see "Dynamic tiles" in the header): entries of the tile ring.
constexpr int kTileSlots = 4;

// 64-column output chunks of one consumer's 64 rows of a normal-mode tile.
template <int BLOCK_N, bool kSiluMul>
constexpr int epi_chunks() {
  return ((kSiluMul ? BLOCK_N / 2 : BLOCK_N) + 63) / 64;
}

// Staging buffers per consumer warp group (GemmShape's kEpiBufs): two, or with store warps one
// per output chunk of a tile if that is more (the host's _epi_bufs; the generated source checks
// that the two agree).
template <int BLOCK_N, bool kSiluMul, bool kStoreWarps>
constexpr int epi_bufs() {
  return kStoreWarps && epi_chunks<BLOCK_N, kSiluMul>() > 2 ? epi_chunks<BLOCK_N, kSiluMul>() : 2;
}

template <int BLOCK_M, int BLOCK_N, int kStages, bool kSwapAB, bool kPingpong = false, int kEpiBufs = 2>
struct GemmShape {
  // 64-row wgmma slices per consumer warp group: 2 for tall tiles (normal mode, BLOCK_M = 256:
  // two consumers of 128 token rows each) and for 128-row ping-pong tiles (each group owns
  // whole 128-row tiles), else 1.
  static constexpr int kSlices = (!kSwapAB && BLOCK_M == (kPingpong ? 128 : 256)) ? 2 : 1;
  // Fitted swap tiles (swap mode, BLOCK_M = 128..256 tokens; see "fitted swap tiles" in the
  // header): a task's rows are split evenly over its m-blocks, and each tile's wgmma N is its
  // row count rounded up to kNStep.
  static constexpr bool kFitted = kSwapAB && BLOCK_M > 64;
  static constexpr int kNStep = 16;
  // Cooperative 128- and 192-row tiles (normal mode, not ping-pong): a consumer group whose 64
  // rows lie past the task's end skips its wgmmas and its epilogue (a "dead" group).
  static constexpr bool kDeadSkip = !kSwapAB && !kPingpong && (BLOCK_M == 128 || BLOCK_M == 192);
  static constexpr int kNumConsumers = kSwapAB ? BLOCK_N / 64 : (kPingpong ? 2 : BLOCK_M / (64 * kSlices));
  static constexpr int kThreads = 128 * (1 + kNumConsumers);
  static constexpr int kWgmmaN = kSwapAB ? BLOCK_M : BLOCK_N;
  static constexpr int kAccum = kWgmmaN / 2;  // f32 accumulators per consumer thread and slice
  static constexpr int kWRows = BLOCK_N;      // weight rows per stage
  static constexpr int kXRows = BLOCK_M;      // token rows per stage
  static constexpr uint32_t kWBytes = kWRows * BLOCK_K * 2;
  static constexpr uint32_t kXBytes = kXRows * BLOCK_K * 2;
  // Token rows per TMA box without kGather: the whole block, or (tall tiles) one 64-row slice,
  // so that slices past the task's m are not loaded, or (fitted tiles) 32 rows (16 where
  // BLOCK_M is not a multiple of 32): a stage loads the boxes that start below the tile's rows
  // rounded up to the N step, the last one reading up to 16 rows past them (the next task's, or
  // zeros past the end), which no wgmma reads. On the H200 (2026-11-29,
  // benchmarks/results/dev_fitted_box_check.json) 32-row boxes made the 160-token tiles 4-11 %
  // faster than 16-row ones (up to 10 boxes per stage), on tiled weights more than on plain;
  // 80- and 160-row boxes gained less, and lost where skewed routing leaves experts few rows.
  static constexpr int kXBoxRows = kSlices > 1 ? 64 : (kFitted ? (BLOCK_M % 32 == 0 ? 32 : kNStep) : kXRows);
  static_assert(kXRows % kXBoxRows == 0, "token boxes tile the stage");
  // cp.async gather: each producer thread copies kCopyChunks 16-byte chunks of a row (chunk c
  // and c + kChunkStep) in rows r, r + kCopyRowStep, ...: one chunk of 8 rows (BLOCK_M = 128),
  // two of 8 rows with tall tiles, so that the row indices stay in 8 of the producer's kProducerRegs registers.
  static constexpr int kCopyChunks = kXRows > 128 ? 2 : 1;
  static constexpr int kChunkStep = 8 / kCopyChunks;                  // threads per 128-byte row
  static constexpr int kCopyRowStep = 128 / kChunkStep;              // rows per pass of the 128 threads
  static constexpr int kRowsPerProducerThread = (kXRows + kCopyRowStep - 1) / kCopyRowStep;
  // TMA gather: warps that issue the row loads (32 rows each, at most the 4 producer warps)
  // and rows per thread (1 for BLOCK_M <= 128).
  static constexpr int kGatherWarps = kXRows >= 128 ? 4 : (kXRows + 31) / 32;
  static constexpr int kRowsPerGatherThread = (kXRows + 32 * kGatherWarps - 1) / (32 * kGatherWarps);
  // Warps that release a stage: the one ping-pong group that consumed it, else every consumer.
  static constexpr int kStageConsumerWarps = kPingpong ? 4 : 4 * kNumConsumers;
  // Output rows a consumer stages per epilogue chunk: its 64 token rows, or (swap) the tokens,
  // at most 64 of them (fitted tiles stage their tokens 64 at a time).
  static constexpr int kEpiRows = kSwapAB && BLOCK_M < 64 ? BLOCK_M : 64;
  static constexpr uint32_t kEpiBytes = kEpiRows * kEpiCols * 2;

  static_assert(kNumConsumers == 1 || kNumConsumers == 2 || (kNumConsumers == 3 && !kSwapAB && BLOCK_M == 192),
                "one or two consumer warp groups, or three for 192-row cooperative tiles");
  static_assert(kSwapAB ? (BLOCK_N % 64 == 0) : (BLOCK_M % 64 == 0), "wgmma M side is 64 rows per consumer");
  static_assert(kSlices == 1 || BLOCK_N <= 192, "two slices of BLOCK_N / 2 accumulators must fit 224 registers");
  static_assert(!kPingpong || (!kSwapAB && (BLOCK_M == 64 || BLOCK_M == 128)), "ping-pong: normal mode, 64 or 128 rows");
  static_assert(BLOCK_M % 8 == 0 && BLOCK_N % 16 == 0, "tiles are whole 8-row swizzle atoms");
  static_assert(BLOCK_M <= 256 && BLOCK_N <= 256, "TMA box rows are at most 256");
  static_assert(kWgmmaN >= 8 && kWgmmaN <= 256, "wgmma N is 8..256");
  static_assert(kStages >= 2, "at least two stages");
  static_assert(kEpiBufs >= 2 && kEpiBufs <= 4, "two to four staging buffers per consumer");
  static_assert(!kFitted || (BLOCK_M % kNStep == 0 && BLOCK_M >= 128), "fitted swap tiles: 128..256 tokens, whole N steps");

  struct SharedStorage {
    alignas(1024) uint16_t w[kStages][kWRows * BLOCK_K];
    alignas(1024) uint16_t x[kStages][kXRows * BLOCK_K];
    alignas(1024) uint16_t epi[kNumConsumers][kEpiBufs][kEpiRows * kEpiCols];  // epilogue staging
    alignas(8) uint64_t full[kStages];
    alignas(8) uint64_t empty[kStages];
    // The dynamic tile ring (kDynamic only; it fits the barriers' padding to the struct's
    // 1024-byte alignment, so it costs no shared memory).
    alignas(8) uint64_t tile_full[kTileSlots];
    alignas(8) uint64_t tile_empty[kTileSlots];
    int32_t tile_ids[kTileSlots];
  };
  // Dynamic shared memory to request: the storage plus slack to align its base to 1024.
  static constexpr int kSmemBytes = static_cast<int>(sizeof(SharedStorage)) + 1024;
};

template <bool kBf16>
struct ElemOps;

template <>
struct ElemOps<true> {
  using pair = __nv_bfloat162;
  using elem = __nv_bfloat16;
  static SB_DEVICE uint32_t pack(float lo, float hi) {
    const pair p = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&p);
  }
  static SB_DEVICE unsigned short one(float v) { return __bfloat16_as_ushort(__float2bfloat16_rn(v)); }
};

template <>
struct ElemOps<false> {
  using pair = __half2;
  using elem = __half;
  static SB_DEVICE uint32_t pack(float lo, float hi) {
    const pair p = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&p);
  }
  static SB_DEVICE unsigned short one(float v) { return __half_as_ushort(__float2half_rn(v)); }
};

// silu(gate) * up. __fdividef instead of the IEEE division (a long instruction sequence run 64
// times per consumer thread and tile): gate/up GEMMs 0-4 % faster at T >= 4096 on the H200
// (2026-11-28, e.g. Mixtral-8x7B T = 16384 12.37 -> 11.90 ms), the same error against the
// float32 reference to 1e-8. For a large negative gate the divisor overflows to inf and
// __fdividef returns 0, silu's limit.
SB_DEVICE float silu_mul(float gate, float up) { return __fdividef(gate, 1.0f + __expf(-gate)) * up; }

// A compile-time int as a value (selects a main-loop instantiation at run time).
template <int N>
struct IntConst {
  static constexpr int value = N;
};

// Calls f(IntConst<N>{}) for N = n rounded up to a multiple of kStep (kStep <= n <= kMax): picks
// a fitted tile's main-loop instantiation at run time.
template <int kStep, int kMax, typename F>
SB_DEVICE void with_fitted_n(int32_t n, F&& f) {
  if constexpr (kMax > kStep) {
    if (n <= kMax - kStep) {
      with_fitted_n<kStep, kMax - kStep>(n, f);
      return;
    }
  }
  f(IntConst<kMax>{});
}

// Where one tile lies: its task's rows, the (m, n) block within the task and its K steps.
struct TileCoord {
  int32_t m;         // rows of the task
  int64_t start;     // first output row of the task
  int32_t expert;    // expert whose weight the task uses
  int32_t m_block;   // token block
  int32_t row0;      // first row of the tile within the task (m_block * BLOCK_M unless fitted)
  int32_t row_end;   // one past its last row within the task (at most m)
  int32_t n_block;   // weight block (BLOCK_N rows)
  int32_t k_block0;  // first K step (of BLOCK_K) of the tile: 0 unless split-K
  int32_t k_blocks;  // K steps of the tile: all of K unless split-K
};

// kSplitK > 1: the tile index within a task is split + kSplitK * (m_block + m_blocks * n_block)
// (see "Split-K" in the header), and slice `split` gets K steps
// [split * nk / kSplitK, (split + 1) * nk / kSplitK), nk = num_k_blocks (not empty when
// kSplitK <= nk, which the host checks). kFitStep > 0 (fitted swap tiles): the task's
// ceil(m / BLOCK_M) m-blocks hold ceil(m / m_blocks) rows each, rounded up to kFitStep (the
// last one the rest, never empty: (m_blocks - 1) * BLOCK_M < m); else BLOCK_M rows each.
template <int BLOCK_M, int kSplitK = 1, int kFitStep = 0>
SB_DEVICE TileCoord locate_tile(const TaskTile& tt, const int32_t* task_rows, const int64_t* task_starts,
                                const int32_t* task_expert, int32_t num_k_blocks) {
  TileCoord c;
  c.m = __ldg(task_rows + tt.task);
  c.start = __ldg(task_starts + tt.task);
  c.expert = __ldg(task_expert + tt.task);
  const int32_t m_blocks = ceil_div<int32_t>(c.m, BLOCK_M);
  const int32_t mn = tt.index / kSplitK;
  c.m_block = mn % m_blocks;  // m fastest: neighbouring tile ids share the weight tile
  c.n_block = mn / m_blocks;
  const int32_t block_rows = kFitStep > 0 ? ceil_div<int32_t>(ceil_div<int32_t>(c.m, m_blocks), kFitStep) * kFitStep
                                          : BLOCK_M;
  c.row0 = c.m_block * block_rows;
  c.row_end = c.m - c.row0 < block_rows ? c.m : c.row0 + block_rows;
  if constexpr (kSplitK == 1) {
    c.k_block0 = 0;
    c.k_blocks = num_k_blocks;
  } else {
    const int32_t split = tt.index - mn * kSplitK;
    c.k_block0 = split * num_k_blocks / kSplitK;
    c.k_blocks = (split + 1) * num_k_blocks / kSplitK - c.k_block0;
  }
  return c;
}

// Byte offset of 16-byte chunk `chunk` (0..7) of row `row` in a staging buffer of 128-byte
// rows, XOR-swizzled so that both the accumulator-fragment writes and the row reads spread
// over all 32 banks.
SB_DEVICE uint32_t epi_offset(int32_t row, int32_t chunk) {
  return static_cast<uint32_t>(row * 128 + ((chunk ^ (row & 7)) << 4));
}

// Copies rows [0, kRows) x 16-byte pieces [0, pieces) of a staging buffer to global memory:
// buffer row r -> output row (out_row0 + r) of the task, columns col0 + 8 * piece. Rows at or
// past the tile's end (tc.row_end: the task's m, or a fitted tile's last row) and columns at or
// past n_out are skipped. kThreads threads (a multiple of
// 8), `tid` = 0..kThreads-1: 8 consecutive threads cover one 128-byte row, so each warp stores 4
// whole row segments, and a thread's piece is the same in every row it stores. kOneAtATime:
// keep one piece in flight instead of unrolling the row loop (the store warps' few registers;
// their stores do not wait).
template <int kRows, int kThreads, bool kOneAtATime, typename Elem>
SB_DEVICE void epi_copy_out(int32_t pieces, uint32_t buf, int32_t tid, const TileCoord& tc, int32_t out_row0, int32_t col0,
                            int32_t n_out, Elem* out) {
  static_assert(kThreads % 8 == 0, "whole 128-byte rows per pass");
  constexpr int kRowStep = kThreads / 8;
  const int32_t c = tid & 7;
  const int32_t col = col0 + c * 8;
  if (c >= pieces || col >= n_out) return;
  static_assert(kOneAtATime || kRows * 8 <= 8 * kThreads, "at most 8 passes unrolled");
#pragma unroll (kOneAtATime ? 1 : 8)
  for (int i = 0; i < (kRows * 8 + kThreads - 1) / kThreads; ++i) {
    const int32_t r = (tid >> 3) + kRowStep * i;
    const int32_t row = out_row0 + r;  // row within the task
    if ((kRows % kRowStep == 0 || r < kRows) && row < tc.row_end) {
      const uint4 v = ptx::ld_shared_v4(buf + epi_offset(r, c));
      ptx::st_global_v4(out + (tc.start + row) * static_cast<int64_t>(n_out) + col, v);
    }
  }
}

// The output chunks of one consumer's 64 rows of a normal-mode tile, as epilogue_normal writes
// them and store_staged copies them out: kCount chunks of kEpiCols output columns, each staged in
// a kBufBytes buffer as 16-byte pieces of 8 columns.
template <int BLOCK_N, bool kSiluMul>
struct EpiChunks {
  static constexpr int kGroups = kSiluMul ? BLOCK_N / 16 : BLOCK_N / 8;  // 8-column output groups
  static constexpr int kCount = epi_chunks<BLOCK_N, kSiluMul>();
  static constexpr uint32_t kBufBytes = 64 * kEpiCols * 2;
  // Pieces of chunk ch: 8, fewer in a last partial chunk.
  static constexpr int pieces(int ch) { return kGroups - ch * 8 < 8 ? kGroups - ch * 8 : 8; }
  // First output column of the tile.
  SB_DEVICE static int32_t col0(const TileCoord& tc) { return tc.n_block * (kSiluMul ? BLOCK_N / 2 : BLOCK_N); }
};

// Writes output chunk `ch` (64 columns) of one consumer warp group's 64 token rows of a
// normal-mode tile into staging buffer `buf` (activation applied, converted). Accumulator i of
// this thread sits at
//   row = 16 * warp_in_group + lane / 4 + 8 * ((i / 2) % 2),
//   col = 8 * (i / 4) + 2 * (lane % 4) + i % 2.
template <typename Ops, int BLOCK_N, bool kSiluMul, int kAccum>
SB_DEVICE void stage_chunk(const float (&acc)[kAccum], int ch, uint32_t buf, int32_t warp_in_group, int32_t lane) {
  constexpr int kGroups = EpiChunks<BLOCK_N, kSiluMul>::kGroups;
#pragma unroll
  for (int gi = 0; gi < 8; ++gi) {
    const int g = ch * 8 + gi;
    if (g < kGroups) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int32_t r = warp_in_group * 16 + lane / 4 + 8 * h;
        float v0, v1;
        if constexpr (kSiluMul) {  // column group 2g holds gate, 2g + 1 the matching up
          v0 = silu_mul(acc[(2 * g) * 4 + 2 * h], acc[(2 * g + 1) * 4 + 2 * h]);
          v1 = silu_mul(acc[(2 * g) * 4 + 2 * h + 1], acc[(2 * g + 1) * 4 + 2 * h + 1]);
        } else {
          v0 = acc[g * 4 + 2 * h];
          v1 = acc[g * 4 + 2 * h + 1];
        }
        ptx::st_shared_b32(buf + epi_offset(r, gi) + (lane & 3) * 4, Ops::pack(v0, v1));
      }
    }
  }
}

// Normal-mode epilogue of one consumer warp group: its 64 token rows (rows row0 .. row0 + 63
// of the task) x the tile's BLOCK_N weight columns, in chunks of 64 output columns through
// its two staging buffers, stored by the group itself.
template <typename Ops, int BLOCK_N, bool kSiluMul, int kAccum, typename Elem>
SB_DEVICE void epilogue_normal(const float (&acc)[kAccum], uint32_t epi_base, uint32_t& chunk_count,
                               uint32_t bar_id, const TileCoord& tc, int32_t row0, int32_t n_out, Elem* out,
                               int32_t warp_in_group, int32_t lane, int32_t tid) {
  using Chunks = EpiChunks<BLOCK_N, kSiluMul>;
  const int32_t tile_col0 = Chunks::col0(tc);
#pragma unroll
  for (int ch = 0; ch < Chunks::kCount; ++ch) {
    const uint32_t buf = epi_base + (chunk_count & 1u) * Chunks::kBufBytes;
    ++chunk_count;
    stage_chunk<Ops, BLOCK_N, kSiluMul>(acc, ch, buf, warp_in_group, lane);
    ptx::named_barrier_sync(bar_id, 128);
    epi_copy_out<64, 128, false>(Chunks::pieces(ch), buf, tid, tc, row0, tile_col0 + ch * kEpiCols, n_out, out);
  }
}

// Store warps (producer warps 1-3, `st` = 0..95): copy one consumer's staged output tile, chunk
// ch in buffer ch, to global memory; the same rows and columns as epilogue_normal's copies.
template <int BLOCK_N, bool kSiluMul, typename Elem>
SB_DEVICE void store_staged(uint32_t epi_base, int32_t st, const TileCoord& tc, int32_t row0, int32_t n_out,
                            Elem* out) {
  using Chunks = EpiChunks<BLOCK_N, kSiluMul>;
  const int32_t tile_col0 = Chunks::col0(tc);
#pragma unroll
  for (int ch = 0; ch < Chunks::kCount; ++ch) {
    epi_copy_out<64, kStoreThreads, true>(Chunks::pieces(ch), epi_base + ch * Chunks::kBufBytes, st, tc, row0,
                                          tile_col0 + ch * kEpiCols, n_out, out);
  }
}

// Swap-mode epilogue of one consumer warp group: weight rows [64 cw, 64 cw + 64) of the tile
// (output columns; 32 of them after silu_and_mul) x the tile's tokens (output rows), transposed
// through the staging buffers, at most 64 tokens per buffer. `live`: the tokens the tile's wgmma
// computed (BLOCK_M, or a fitted tile's row count rounded up to its N step; uniform over the
// warp group); accumulators of tokens at or past it are not read. Accumulator i sits at wgmma
// row (weight) 16 * warp_in_group + lane / 4 + 8 * ((i / 2) % 2) and column (token)
// 8 * (i / 4) + 2 * (lane % 4) + i % 2.
template <typename Ops, int BLOCK_M, int BLOCK_N, bool kSiluMul, int kAccum, typename Elem>
SB_DEVICE void epilogue_swap(const float (&acc)[kAccum], uint32_t epi_base, uint32_t& chunk_count, uint32_t bar_id,
                             const TileCoord& tc, int32_t cw, int32_t n_out, Elem* out, int32_t warp_in_group,
                             int32_t lane, int32_t tid, int32_t live = BLOCK_M) {
  constexpr int kChunkRows = BLOCK_M < 64 ? BLOCK_M : 64;  // tokens per staging buffer
  constexpr uint32_t kBufBytes = kChunkRows * kEpiCols * 2;
  const int32_t col0 = kSiluMul ? (tc.n_block * BLOCK_N + cw * 64) / 2 : tc.n_block * BLOCK_N + cw * 64;
#pragma unroll
  for (int ch = 0; ch < (BLOCK_M + kChunkRows - 1) / kChunkRows; ++ch) {  // the last chunk may be partial
    if (ch * kChunkRows >= live) break;
    const uint32_t buf = epi_base + (chunk_count & 1u) * kBufBytes;
    ++chunk_count;
#pragma unroll
    for (int jj = 0; jj < kChunkRows / 8; ++jj) {
      const int j = ch * (kChunkRows / 8) + jj;  // 8-token group of the tile
      if (j * 8 < BLOCK_M && j * 8 < live) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int32_t tok = jj * 8 + (lane & 3) * 2 + e;  // buffer row
          if constexpr (kSiluMul) {
            // Rows 16 * warp_in_group + lane / 4 (gate) and + 8 (up) -> one output column.
            const int32_t wc = warp_in_group * 8 + lane / 4;
            ptx::st_shared_b16(buf + epi_offset(tok, wc >> 3) + (wc & 7) * 2,
                               Ops::one(silu_mul(acc[j * 4 + e], acc[j * 4 + 2 + e])));
          } else {
            // Weight rows wc and wc + 8 converted as one pair. Converting each accumulator on
            // its own made ptxas serialise the kernel's wgmmas (C7514, "non wgmma instructions
            // reading accumulator registers"); the pair does not, and the down GEMMs at T = 1
            // measured 2-12 % faster for it (H200, 2026-11-28, dev_swap_epilogue_check.json).
            const uint32_t pr = Ops::pack(acc[j * 4 + e], acc[j * 4 + 2 + e]);
            const int32_t wc = warp_in_group * 16 + lane / 4;
            ptx::st_shared_b16(buf + epi_offset(tok, wc >> 3) + (wc & 7) * 2, static_cast<unsigned short>(pr & 0xffffu));
            ptx::st_shared_b16(buf + epi_offset(tok, (wc + 8) >> 3) + (wc & 7) * 2,
                               static_cast<unsigned short>(pr >> 16));
          }
        }
      }
    }
    ptx::named_barrier_sync(bar_id, 128);
    epi_copy_out<kChunkRows, 128, false>(kSiluMul ? 4 : 8, buf, tid, tc, tc.row0 + ch * kChunkRows, col0, n_out, out);
  }
}

// Split-K hand-off of one consumer warp group (swap mode, see "Split-K" in the header).
// Publishes this slice's fp32 accumulators to the workspace and counts the arrival on the
// (output tile, warp group) counter. Returns false in every group but the last to arrive;
// in that one it returns true with `acc` replaced by the sum of all kSplitK slices taken in
// slice order 0, 1, ..., kSplitK - 1 (deterministic whichever slice arrives last), and the
// counter reset to 0 for the next launch. `tile` is the global tile id; its output tile is
// tile / kSplitK, its slice tile % kSplitK (every task's tile count is a multiple of kSplitK).
// Workspace layout: float [output tiles][kSplitK][kNumConsumers][kAccum / 4][128 threads][4],
// so each float4 access of the warp group is one coalesced 2 KB row.
template <int kSplitK, int kNumConsumers, int kAccum>
SB_DEVICE bool splitk_reduce(float (&acc)[kAccum], float* workspace, uint32_t* counters, int32_t tile, int32_t cw,
                             uint32_t bar_id, int32_t tid) {
  static_assert(kAccum % 4 == 0, "float4 groups");
  constexpr int64_t kGroupFloats = static_cast<int64_t>(kAccum) * 128;  // one group's partial
  constexpr int64_t kSliceFloats = kGroupFloats * kNumConsumers;
  const int32_t out_tile = tile / kSplitK;
  const int32_t split = tile - out_tile * kSplitK;
  const float* base = workspace + static_cast<int64_t>(out_tile) * kSplitK * kSliceFloats + cw * kGroupFloats + tid * 4;
  float* mine = workspace + (static_cast<int64_t>(out_tile) * kSplitK + split) * kSliceFloats + cw * kGroupFloats +
                tid * 4;
#pragma unroll
  for (int v = 0; v < kAccum / 4; ++v) {
    ptx::st_global_v4_f32(mine + v * 512, acc[4 * v], acc[4 * v + 1], acc[4 * v + 2], acc[4 * v + 3]);
  }
  // Release: every thread's partial is ordered before the group's barrier, the barrier before
  // thread 0's acq_rel atomic. The last arrival's acquire (its atomic, then the barrier and a
  // fence in each thread) orders the other slices' partials before the reads below.
  ptx::fence_acq_rel_gpu();
  ptx::named_barrier_sync(bar_id, 128);
  bool last = false;
  if (tid == 0) {
    uint32_t* counter = counters + static_cast<int64_t>(out_tile) * kNumConsumers + cw;
    last = ptx::atomic_add_acq_rel_gpu(counter, 1u) == static_cast<uint32_t>(kSplitK - 1);
    if (last) ptx::st_relaxed_gpu_u32(counter, 0u);  // every slice has arrived: reset for the next launch
  }
  if (!ptx::named_barrier_sync_or(bar_id, 128, last)) return false;
  ptx::fence_acq_rel_gpu();
#pragma unroll
  for (int v = 0; v < kAccum / 4; ++v) {
    // This slice's own values come from registers (bit-identical to what it stored).
    const float4 own = make_float4(acc[4 * v], acc[4 * v + 1], acc[4 * v + 2], acc[4 * v + 3]);
    float4 sum = split == 0 ? own : ptx::ld_global_cg_v4_f32(base + v * 512);
#pragma unroll
    for (int s = 1; s < kSplitK; ++s) {
      const float4 p = s == split ? own : ptx::ld_global_cg_v4_f32(base + s * kSliceFloats + v * 512);
      sum.x += p.x;
      sum.y += p.y;
      sum.z += p.z;
      sum.w += p.w;
    }
    acc[4 * v] = sum.x;
    acc[4 * v + 1] = sum.y;
    acc[4 * v + 2] = sum.z;
    acc[4 * v + 3] = sum.w;
  }
  return true;
}

// Phase 1 of the staged gather: workspace[r] = a[gather_idx[r]] for the grouped rows r of the
// tasks that have tiles in this launch (all tasks with rows, unless the call runs tile classes:
// then only this class's), K elements each (K % 8 == 0, rows 16-byte aligned). Each warp copies
// groups of consecutive rows of one task, as many as keep kStageUnroll 16-byte pieces per lane in
// flight (kStageUnroll * 32 / (K / 8) rows, at least one). The groups of all copied tasks, in task
// order, are dealt round-robin to the grid's warps. Every thread of the grid calls it. (A
// first version walked the tasks one by one with 64-bit divisions per task in every warp:
// Qwen3-30B-A3B's gate/up at T = 1024, 128 tasks, ran 15 % slower than the plain row loop it
// replaced; H200, 2026-11-28.)
constexpr int kStageUnroll = 16;

// Loads this lane's pieces p0, p0 + 32, ... (kStageUnroll of them, those below `total`) of a run
// of rows of `pieces` 16-byte pieces each into v: piece p is piece p % pieces of the row that
// row_src(p / pieces) points to. Both staged copies issue all the loads before any store.
template <typename RowSrc>
SB_DEVICE void load_pieces(uint4 (&v)[kStageUnroll], int32_t p0, int32_t total, int32_t pieces, RowSrc row_src) {
#pragma unroll
  for (int u = 0; u < kStageUnroll; ++u) {
    const int32_t p = p0 + 32 * u;
    if (p < total) {
      const int32_t j = p / pieces;
      v[u] = ptx::ld_global_nc_v4(row_src(j) + (p - j * pieces));
    }
  }
}
SB_DEVICE void stage_rows(const uint16_t* a, int64_t lda, const int32_t* gather_idx, const int32_t* tile_offsets,
                          const int32_t* task_rows, const int64_t* task_starts, int32_t num_tasks, int32_t k,
                          uint16_t* workspace) {
  const int32_t lane = static_cast<int32_t>(threadIdx.x & 31);
  const int32_t warps_per_block = static_cast<int32_t>(blockDim.x / 32);
  const int32_t num_warps = static_cast<int32_t>(gridDim.x) * warps_per_block;  // a few thousand at most
  const int32_t my_warp = static_cast<int32_t>(blockIdx.x) * warps_per_block + static_cast<int32_t>(threadIdx.x / 32);
  const int32_t pieces = k / 8;  // 16-byte pieces per row
  const int32_t group = pieces >= 32 * kStageUnroll ? 1 : 32 * kStageUnroll / pieces;  // rows per warp at once
  // Copies rows [r0, r0 + rows) (consecutive grouped rows are contiguous in the workspace).
  auto copy_rows = [&](int64_t r0, int32_t rows) {
    const int32_t total = rows * pieces;
    for (int32_t p0 = lane; p0 < total; p0 += 32 * kStageUnroll) {
      uint4 v[kStageUnroll];
      load_pieces(v, p0, total, pieces, [&](int32_t r) {
        return reinterpret_cast<const uint4*>(a + static_cast<int64_t>(__ldg(gather_idx + r0 + r)) * lda);
      });
#pragma unroll
      for (int u = 0; u < kStageUnroll; ++u) {
        const int32_t p = p0 + 32 * u;
        if (p < total) ptx::st_global_v4(reinterpret_cast<uint4*>(workspace + r0 * static_cast<int64_t>(k)) + p, v[u]);
      }
    }
  };
  // The warp walks the tasks 32 at a time, lane i holding task t0 + i; all integer work that
  // needs a division is done per lane (in parallel), the walk itself only shuffles. Row groups
  // are numbered over the copied tasks in task order (fewer than 2^31: rows are); group G goes
  // to warp G % warps.
  int32_t dealt = 0;  // groups of the copied tasks before this chunk of 32
  for (int32_t t0 = 0; t0 < num_tasks; t0 += 32) {
    const int32_t t = t0 + lane;
    int32_t m = 0;  // rows of task t if it has tiles in this launch, else 0
    int64_t start = 0;
    if (t < num_tasks && __ldg(tile_offsets + t + 1) > __ldg(tile_offsets + t)) {
      m = __ldg(task_rows + t);
      start = __ldg(task_starts + t);
    }
    const int32_t groups = (m + group - 1) / group;
    int32_t incl = groups;  // inclusive scan of groups over the lanes
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int32_t v = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += v;
    }
    const int32_t first = dealt + incl - groups;  // number of task t's first group
    // This warp's first group within task t: the g with (first + g) % warps == my_warp.
    const int32_t g_first = (my_warp - first % num_warps + num_warps) % num_warps;
    dealt += __shfl_sync(0xffffffffu, incl, 31);
    for (uint32_t live = __ballot_sync(0xffffffffu, g_first < groups); live != 0u; live &= live - 1u) {
      const int32_t j = __ffs(static_cast<int32_t>(live)) - 1;
      const int32_t mj = __shfl_sync(0xffffffffu, m, j);
      const int32_t gj = __shfl_sync(0xffffffffu, groups, j);
      const int64_t sj = __shfl_sync(0xffffffffu, start, j);
      for (int32_t g = __shfl_sync(0xffffffffu, g_first, j); g < gj; g += num_warps) {
        const int32_t r0 = g * group;
        copy_rows(sj + r0, mj - r0 < group ? mj - r0 : group);
      }
    }
  }
}

// Phase 1 of the staged gather, by token: for every token t, its row a[t] is read once and
// written to workspace[slot_to_row[t, s]] for each of its top_k slots s that has a row (>= 0).
// Every grouped row is written (the call's only launch covers every task; see the header).
// Each warp takes groups of consecutive tokens, as many as keep kStageUnroll 16-byte pieces
// per lane in flight, dealt round-robin over the grid's warps. A grouped row's source token is
// read from DRAM once instead of once per slot, and the writes are whole rows as before.
SB_DEVICE void stage_rows_by_token(const uint16_t* a, int64_t lda, const int32_t* slot_to_row, int32_t num_tokens,
                                   int32_t top_k, int32_t k, uint16_t* workspace) {
  const int32_t lane = static_cast<int32_t>(threadIdx.x & 31);
  const int32_t warps_per_block = static_cast<int32_t>(blockDim.x / 32);
  const int32_t num_warps = static_cast<int32_t>(gridDim.x) * warps_per_block;
  const int32_t my_warp = static_cast<int32_t>(blockIdx.x) * warps_per_block + static_cast<int32_t>(threadIdx.x / 32);
  const int32_t pieces = k / 8;  // 16-byte pieces per row
  const int32_t group = pieces >= 32 * kStageUnroll ? 1 : 32 * kStageUnroll / pieces;  // tokens per warp at once
  const int32_t groups = (num_tokens + group - 1) / group;
  for (int32_t g = my_warp; g < groups; g += num_warps) {
    const int32_t t0 = g * group;
    const int32_t total = (num_tokens - t0 < group ? num_tokens - t0 : group) * pieces;
    for (int32_t p0 = lane; p0 < total; p0 += 32 * kStageUnroll) {
      uint4 v[kStageUnroll];
      load_pieces(v, p0, total, pieces,
                  [&](int32_t j) { return reinterpret_cast<const uint4*>(a + static_cast<int64_t>(t0 + j) * lda); });
      for (int32_t slot = 0; slot < top_k; ++slot) {
#pragma unroll
        for (int u = 0; u < kStageUnroll; ++u) {
          const int32_t p = p0 + 32 * u;
          if (p < total) {
            const int32_t j = p / pieces;
            const int32_t row = __ldg(slot_to_row + static_cast<int64_t>(t0 + j) * top_k + slot);
            if (row >= 0) {
              ptx::st_global_v4(reinterpret_cast<uint4*>(workspace + static_cast<int64_t>(row) * k) + (p - j * pieces),
                                v[u]);
            }
          }
        }
      }
    }
  }
}

// Every block of the grid waits here until all have arrived (all must be resident).
// counters[0] counts this launch's arrivals and is zero between launches; counters[1] is a
// generation word the last arrival advances. Afterwards thread 0 of each block may read what
// any block wrote before the barrier, also through TMA (its proxy fence).
SB_DEVICE void grid_barrier(uint32_t* counters) {
  __syncthreads();
  if (threadIdx.x == 0) {
    const uint32_t gen = ptx::ld_acquire_gpu_u32(counters + 1);
    // The block's writes (ordered before this thread by __syncthreads) go out with the arrival.
    ptx::fence_acq_rel_gpu();
    if (ptx::atomic_add_acq_rel_gpu(counters, 1u) == gridDim.x - 1) {
      ptx::st_relaxed_gpu_u32(counters, 0u);  // ready for the next launch
      ptx::st_release_gpu_u32(counters + 1, gen + 1u);
    } else {
      while (ptx::ld_acquire_gpu_u32(counters + 1) == gen) ptx::nanosleep(64);
    }
    ptx::fence_proxy_async_global();
  }
  __syncthreads();
}

#ifdef SB_DEV_TRACE
// Dev only: per block of a concurrent launch, (SM, start ns, end ns, block_index) into counters.
SB_DEVICE void dev_trace(uint32_t* counters, int32_t role, bool up, int32_t field, uint32_t v) {
  if (role == 0 || threadIdx.x != 0) return;
  counters[64 + (up ? 0 : 2048) + (role - 1) * 1024 + blockIdx.x * 4 + field] = v;
}
SB_DEVICE uint32_t dev_now() {
  uint64_t t;
  asm volatile("mov.u64 %0, %globaltimer;" : "=l"(t));
  return static_cast<uint32_t>(t);
}
SB_DEVICE uint32_t dev_smid() {
  uint32_t r;
  asm volatile("mov.u32 %0, %smid;" : "=r"(r));
  return r;
}
#define SB_TRACE(field, v) dev_trace(counters, split_role, kSiluMul, field, v)
#else
#define SB_TRACE(field, v) ((void)0)
#endif

// Concurrent classes: the blocks of the hot launch that run its tiles, the same in both launches
// of the pair (each reads both classes' tile totals, which the routing pass wrote before either
// began). split_sms * H / (H + cost * C) for H hot and C cold tiles, `cost` a cold tile's time in
// hot tiles, plus kSplitBias, rounded down to whole 2-CTA clusters and kept in [2, split_sms - 2];
// 0 without hot tiles, every SM without cold ones.
constexpr float kSplitBias = 4.0f;
SB_DEVICE int32_t split_hot_blocks(const int32_t* hot_total, const int32_t* cold_total, float cost, int32_t sms) {
  const int32_t h = __ldg(hot_total);
  const int32_t c = __ldg(cold_total);
  if (h == 0) return 0;
  if (c == 0) return sms;
  const float x = static_cast<float>(sms) * static_cast<float>(h) / (static_cast<float>(h) + cost * static_cast<float>(c));
  const int32_t blocks = static_cast<int32_t>(x + kSplitBias) & ~1;
  return blocks < 2 ? 2 : (blocks > sms - 2 ? sms - 2 : blocks);
}

// The block's shared storage: its dynamic shared memory, the base rounded up to 1024 bytes
// (the 128-byte swizzle atom).
template <typename Storage>
SB_DEVICE Storage& aligned_storage() {
  unsigned char* raw = dynamic_smem<unsigned char>();
  const uint32_t raw_addr = ptx::smem_addr(raw);
  return *reinterpret_cast<Storage*>(raw + ((1024u - (raw_addr & 1023u)) & 1023u));
}

// The first weight load waits on a chain of dependent plan reads (tile_offsets' total, the
// mapper's search, the task arrays), each a trip to DRAM when the plan is not in L2. Warp 1
// (this lane of it) starts the lines of those arrays on their way at once, in parallel (up to
// 1024 tasks): `tile_offsets2` is a second GEMM's (the one-launch MLP) or null, `gather_idx`
// (all of a decode step's rows) null without gather. On the H200 (2026-11-28, both GEMMs of a
// layer, L2 flushed): Qwen3-30B-A3B T = 1 33.8 -> 32.8 us, GPT-OSS-120B T = 1 66.0 -> 65.4 us,
// the other decode points within noise.
SB_DEVICE void prefetch_plan(int32_t lane, int32_t num_tasks, const int32_t* tile_offsets, const int32_t* tile_offsets2,
                             const int32_t* task_rows, const int32_t* task_expert, const int64_t* task_starts,
                             const int32_t* gather_idx) {
  if (lane * 32 <= num_tasks) {
    ptx::prefetch_l2(tile_offsets + lane * 32);
    if (tile_offsets2 != nullptr) ptx::prefetch_l2(tile_offsets2 + lane * 32);
  }
  if (lane * 32 < num_tasks) {
    ptx::prefetch_l2(task_rows + lane * 32);
    ptx::prefetch_l2(task_expert + lane * 32);
  }
  if (lane * 16 <= num_tasks) ptx::prefetch_l2(task_starts + lane * 16);
  if (lane == 0 && gather_idx != nullptr) ptx::prefetch_l2(gather_idx);
}

// The ring's barriers (one thread): each stage's full barrier expects `full_arrivals`, its
// empty barrier `empty_arrivals`.
template <int kStages, typename Storage>
SB_DEVICE void init_ring(Storage& ss, uint32_t full_arrivals, uint32_t empty_arrivals) {
#pragma unroll
  for (int s = 0; s < kStages; ++s) {
    ptx::mbarrier_init(&ss.full[s], full_arrivals);
    ptx::mbarrier_init(&ss.empty[s], empty_arrivals);
  }
  ptx::fence_barrier_init();
}

// Dynamic tiles (see the header): the block's sequence of tiles, read from the tile ring by one
// reader warp (every lane calls next() together). Entry j holds the first tile id of a cluster's
// pair (or the tile id without a cluster); this CTA's tile is that plus its rank. An entry at or
// past `total` ends the sequence (next() then returns `total`); a rank-1 tile past the end beside
// a live rank-0 tile (an odd total) is skipped. Each entry is released as soon as it is read,
// on the fetching CTA's (rank 0's) empty barrier.
template <int kCluster, typename Storage>
struct TileRing {
  Storage& ss;
  int32_t total;
  uint32_t rank;
  uint32_t j = 0;  // entries read so far

  SB_DEVICE int32_t next(int32_t lane) {
    for (;;) {
      const uint32_t slot = j % kTileSlots;
      const uint32_t parity = (j / kTileSlots) & 1u;
      ++j;
      // Rank 1 reads a value rank 0 stored into its shared memory: acquire at cluster scope.
      if (kCluster > 1 && rank != 0) {
        ptx::mbarrier_wait_cluster(&ss.tile_full[slot], parity);
      } else {
        ptx::mbarrier_wait(&ss.tile_full[slot], parity);
      }
      // Lane 0 reads the entry and the shuffle hands it to the warp, so the read has completed
      // (its value used) before lane 0 releases the entry.
      int32_t base = 0;
      if (lane == 0) base = *static_cast<volatile int32_t*>(&ss.tile_ids[slot]);
      base = __shfl_sync(0xffffffffu, base, 0);
      if (lane == 0) {
        // Plain arrivals (release at CTA scope) suffice for that. Release at cluster scope would
        // also wait for this warp's earlier global stores (the previous tile's output), at every
        // tile.
        if (kCluster == 1 || rank == 0) {
          ptx::mbarrier_arrive(&ss.tile_empty[slot]);
        } else {
          ptx::mbarrier_arrive_cluster(ptx::mapa_shared(ptx::smem_addr(&ss.tile_empty[slot]), 0u));
        }
      }
      if (base >= total) return total;
      const int32_t tile = base + static_cast<int32_t>(rank);
      if (tile < total) return tile;
    }
  }

  // Rank 0's producer warp, lane 0: takes the next tile (or pair) from the global counter. The
  // value is used one tile later (publish), so the atomic's round trip is off the critical path.
  SB_DEVICE static uint32_t fetch(uint32_t* next_counter, int32_t lane) {
    return lane == 0 ? atomicAdd(next_counter, 1u) : 0u;
  }

  // Rank 0's producer warp (every lane): publishes the fetched value (lane 0's) as entry `jf` in
  // this CTA's ring and the other CTA's.
  SB_DEVICE void publish(uint32_t jf, uint32_t fetched, int32_t lane) {
    const uint32_t slot = jf % kTileSlots;
    ptx::mbarrier_wait(&ss.tile_empty[slot], ((jf / kTileSlots) & 1u) ^ 1u);
    const uint32_t v = __shfl_sync(0xffffffffu, fetched, 0) * static_cast<uint32_t>(kCluster);
    const int32_t base = v >= static_cast<uint32_t>(total) ? total : static_cast<int32_t>(v);
    if (lane == 0) {
      ss.tile_ids[slot] = base;
      if constexpr (kCluster > 1) {
        ptx::st_shared_cluster_u32(ptx::mapa_shared(ptx::smem_addr(&ss.tile_ids[slot]), 1u), static_cast<uint32_t>(base));
        ptx::mbarrier_arrive_release_cluster(ptx::mapa_shared(ptx::smem_addr(&ss.tile_full[slot]), 1u));
      }
      ptx::mbarrier_arrive(&ss.tile_full[slot]);
    }
  }
};

// The kernel body. All threads of the block call it; the block has Shape::kThreads threads
// and Shape::kSmemBytes bytes of dynamic shared memory. `a_map` is read without kGather (box
// {64, BLOCK_M}) and with kTmaGather (box {64, 1}); it may be all zeros for the cp.async
// gather. kTmaGather selects the gather method and means nothing without kGather. With
// kSplitK > 1 (swap mode only) `splitk_workspace` and `splitk_counters` are the split-K
// workspace and counters (see the header); else unused.
template <bool kBf16, int BLOCK_M, int BLOCK_N, int kStages, bool kSwapAB, bool kGather, bool kSiluMul,
          bool kPingpong = false, bool kTmaGather = false, int kSplitK = 1, bool kStaged = false, int kCluster = 1,
          bool kStoreWarps = false, bool kDynamic = false, bool kTiledW = false>
SB_DEVICE void grouped_gemm(const ptx::TmaDescriptor& w_map, const ptx::TmaDescriptor& a_map, const void* a_ptr,
                            int64_t lda, void* out_ptr, const int32_t* gather_idx, const int32_t* tile_offsets,
                            const int32_t* task_rows, const int64_t* task_starts, const int32_t* task_expert,
                            int32_t num_tasks, int32_t n, int32_t k, void* workspace = nullptr,
                            uint32_t* counters = nullptr, const int32_t* slot_to_row = nullptr,
                            int32_t num_tokens = 0, int32_t top_k = 0, const int32_t* split_hot_total = nullptr,
                            const int32_t* split_cold_total = nullptr, float split_cost = 0.0f,
                            int32_t split_sms = 0, int32_t split_role = 0) {
  static_assert(kSplitK >= 1 && (kSplitK == 1 || kSwapAB), "split-K is for swap mode");
  static_assert(!kStaged || (!kGather && kSplitK == 1), "the staged gather runs the kernel without gather, unsplit");
  static_assert(kCluster == 1 || (kCluster == 2 && !kSwapAB && !kGather && kSplitK == 1 && !(BLOCK_M == 256)),
                "2-CTA clusters: normal mode, no in-loop gather, no split-K, no tall tiles");
  static_assert((BLOCK_N / kCluster) % 8 == 0, "weight boxes of whole 8-row swizzle atoms");
  static_assert(!kDynamic || (!kGather && kSplitK == 1 && (kSwapAB || (!kPingpong && BLOCK_M == 128))),
                "dynamic tiles: swap mode or 128-row cooperative tiles, no in-loop gather, no split-K");
  float* const splitk_workspace = static_cast<float*>(workspace);
  uint32_t* const splitk_counters = counters;
  static_assert(!kStoreWarps || (!kSwapAB && !kPingpong && BLOCK_M == 128 && kSplitK == 1 && !kGather),
                "store warps: normal mode, 128-row cooperative tiles, no in-loop gather (it uses every producer warp)");
  // Store warps: a buffer for every output chunk of a consumer's tile (at least two).
  constexpr int kEpiBufs = epi_bufs<BLOCK_N, kSiluMul, kStoreWarps>();
  using Shape = GemmShape<BLOCK_M, BLOCK_N, kStages, kSwapAB, kPingpong, kEpiBufs>;
  using Storage = typename Shape::SharedStorage;
  using Ops = ElemOps<kBf16>;
  constexpr int kNumConsumers = Shape::kNumConsumers;
  constexpr int kXRows = Shape::kXRows;
  constexpr bool kCpAsyncGather = kGather && !kTmaGather;  // rows by cp.async (generic proxy)
  constexpr bool kRowTma = kGather && kTmaGather;          // rows by one TMA each
  constexpr bool kLeanProducer = (kPingpong && BLOCK_M == 128) || kNumConsumers == 3;
  static_assert(kNumConsumers < 3 || (!kGather && !kStoreWarps && !kDynamic),
                "192-row tiles: no in-loop gather (the lean producer), no store warps, static tiles");
  constexpr int kPRegs = kLeanProducer ? kLeanProducerRegs : kProducerRegs;
  constexpr int kCRegs = kNumConsumers == 3 ? kTripleConsumerRegs : (kLeanProducer ? kWideConsumerRegs : kConsumerRegs);
  constexpr bool kFitted = Shape::kFitted;
  constexpr int kFitStep = kFitted ? Shape::kNStep : 0;    // locate_tile's row split
  // Fitted tiles: the wgmma N of a tile of `rows` rows.
  auto fitted_n = [](int32_t rows) { return (rows + Shape::kNStep - 1) / Shape::kNStep * Shape::kNStep; };
  // Token rows of a tile of `rows` rows that some consumer reads: all kXRows, (tall tiles) the
  // 64-row slices that hold rows of the task, or (fitted tiles) the rows rounded up to the wgmma
  // N step; the others are skipped by the consumers and loaded only where a token box that
  // starts below them reaches them (fitted tiles' last box).
  auto x_live_of = [&](int32_t rows) -> int32_t {
    return Shape::kSlices > 1 ? (rows + 63) / 64 * 64 : (kFitted ? fitted_n(rows) : kXRows);
  };

  Storage& ss = aligned_storage<Storage>();

  const int32_t warp = ptx::warp_id_uniform();
  const int32_t lane = static_cast<int32_t>(threadIdx.x & 31);
  const int32_t warp_group = warp / 4;

  if (warp == 1) prefetch_plan(lane, num_tasks, tile_offsets, nullptr, task_rows, task_expert, task_starts, gather_idx);
  // cp.async gather: 128 cp.async arrivals + thread 0's expect_tx; otherwise only the latter. One
  // empty arrival per consumer warp (of both CTAs of a 2-CTA cluster).
  if (threadIdx.x == 0) {
    if constexpr (kDynamic) {
      // Readers of each tile-ring entry, per CTA: producer warp 0, the consumer warps and the
      // store warps, one arrival each; in a cluster rank 1's arrive on rank 0's barrier too.
      constexpr uint32_t kReaders = 1 + 4 * kNumConsumers + (kStoreWarps ? 3 : 0);
      for (int s = 0; s < kTileSlots; ++s) {
        ptx::mbarrier_init(&ss.tile_full[s], 1);
        ptx::mbarrier_init(&ss.tile_empty[s], kReaders * kCluster);
      }
    }
    init_ring<kStages>(ss, kCpAsyncGather ? 128 + 1 : 1, Shape::kStageConsumerWarps * kCluster);
  }
  if (threadIdx.x == 32) {
    if constexpr (!kTiledW) ptx::tma_prefetch_descriptor(&w_map);
    if constexpr (!kCpAsyncGather) ptx::tma_prefetch_descriptor(&a_map);
  }
  // Concurrent classes (see the header): a hot launch lets its dependent start only once it has
  // waited for the kernel before it (and staged every row), a cold one waits at its end.
  const bool split_hot = split_role == 1;
  const bool split_cold = split_role == 2;
  if (!split_hot) ptx::griddep_launch_dependents();
  __syncthreads();
  // Clusters: the other CTA's barriers are initialised before anyone signals them.
  if constexpr (kCluster > 1) ptx::cluster_sync();
  const uint32_t cta_rank = kCluster > 1 ? ptx::cluster_ctarank() : 0u;

  // Programmatic dependent launch (see the header): without gather, the producer's warp 0 loads
  // the first weight stages before it waits for the previous kernel; everyone else waits now.
  constexpr bool kWeightsFirst = !kGather && !kStaged && kCluster == 1 && !kDynamic;
  if (!split_cold && (!kWeightsFirst || warp_group != 0)) ptx::griddep_wait();

  const int32_t total_tiles = __ldg(tile_offsets + num_tasks);
  // The blocks that run tiles (block_index < grid_blocks, static order: tiles block_index + i *
  // grid_blocks): the grid, or in a hot launch of concurrent classes its share of it. A cold
  // launch's blocks all run tiles, taken from the dynamic tile counter as they start.
  int32_t grid_blocks = static_cast<int32_t>(gridDim.x);
  const int32_t block_index = static_cast<int32_t>(blockIdx.x);
  if (split_hot) {
    grid_blocks = min(split_hot_blocks(split_hot_total, split_cold_total, split_cost, split_sms), grid_blocks);
  }
  // A launch without tiles (a tile class that no expert falls in) ends here, in every block alike
  // (a hot launch of concurrent classes first stages the rows of both).
  if (total_tiles == 0 && !(kStaged && split_hot)) {
    if (split_cold) ptx::griddep_wait();
    return;
  }

  if constexpr (kStaged) {  // phase 1 of the staged gather (see the header)
    if (split_cold) {
      // The hot launch staged every row and passed its grid barrier before this launch began.
      // Thread 0 (the one that issues this block's TMA loads) acquires the barrier's generation
      // word (counters[1], which the hot launch's last arrival advanced with a release after
      // every block's rows), then fences the async proxy, as a block leaving grid_barrier does.
      if (threadIdx.x == 0) {
        (void)ptx::ld_acquire_gpu_u32(counters + 1);
        ptx::fence_proxy_async_global();
      }
    } else if (slot_to_row != nullptr) {
      stage_rows_by_token(static_cast<const uint16_t*>(a_ptr), lda, slot_to_row, num_tokens, top_k, k,
                          static_cast<uint16_t*>(workspace));
    } else {
      stage_rows(static_cast<const uint16_t*>(a_ptr), lda, gather_idx, tile_offsets, task_rows, task_starts, num_tasks,
                 k, static_cast<uint16_t*>(workspace));
    }
    if (!split_cold) grid_barrier(counters);
  }
  if (split_hot) ptx::griddep_launch_dependents();
#ifdef SB_DEV_TRACE
  SB_TRACE(0, dev_smid());
  SB_TRACE(1, dev_now());
  SB_TRACE(3, static_cast<uint32_t>(block_index) | (static_cast<uint32_t>(grid_blocks) << 16));
#endif
  // Concurrent classes: the blocks past this launch's share leave (the cold launch's wait for
  // the hot one first, so that the cold launch ends after it).
  if (total_tiles == 0 || block_index >= grid_blocks) {
    if (split_cold) ptx::griddep_wait();
    return;
  }

  const int32_t num_k_blocks = ceil_div<int32_t>(k, BLOCK_K);
  const int32_t n_blocks = ceil_div<int32_t>(n, BLOCK_N);
  // The weight box {64 columns, R rows} at k-block kb from row `row` (a multiple of 8) of
  // `expert`. Over [E, N, K]: one TMA of the tensor map, which reads 128 bytes from each of the
  // R rows. Over a tiled weight (kTiledW, pack_weight: [E, N / 64, K / 64, 64, 64], the 128-byte
  // rows of each 64 x 64 block stored in the order the 128-byte swizzle puts them in shared
  // memory): 1-D bulk copies, each block's k-blocks at consecutive addresses, of whole 64-row
  // blocks, or of 32-row pieces for 96-row boxes (R and `row` are multiples of 32: tiles are
  // 64-256 rows wide, and a cluster splits a tiled weight tile only into halves of whole blocks,
  // see kShareTiledW). `w_map` then holds {address, 64-row blocks per expert}; a block past the
  // expert's last is read from its last (rows >= N, never stored). On the H200 (see
  // docs/performance.md, "Seventeenth session" and "Eighteenth session") tiled weights streamed
  // 3-6 % faster at T <= 128 than the tensor map; a runtime loop over pieces was 12-15 % slower
  // than these unrolled copies.
  auto w_piece = [&](int32_t kb, int32_t r, int32_t expert) -> const char* {
    const int64_t nb = static_cast<int64_t>(w_map.data[1]);
    const int64_t blk = r / 64 < nb ? r / 64 : nb - 1;
    return reinterpret_cast<const char*>(w_map.data[0]) +
           (((static_cast<int64_t>(expert) * nb + blk) * num_k_blocks + kb) * 64 + r % 64) * 128;
  };
  // Clusters over a tiled weight: the CTAs share (multicast) the weight tile only when its halves
  // are whole 64-row blocks; otherwise (128 x 192 tiles: 96-row halves) each copies the whole
  // tile itself. On the H200 multicast 32-row pieces were 0-5 % slower than that at
  // T = 16384, and pieces by a runtime loop up to 12 % (dev_tiled_cluster_check.json).
  constexpr bool kShareTiledW = !kTiledW || (BLOCK_N / 2) % 64 == 0;
  // A tiled box of rows_c::value rows. `mask`: the cluster's CTAs that receive it (0: this CTA only).
  auto load_tiled_w = [&](uint32_t dst, uint64_t* bar, int32_t kb, int32_t row, int32_t expert, uint16_t mask,
                          auto rows_c) {
    constexpr int32_t kRows = decltype(rows_c)::value;
    static_assert(kRows % 32 == 0, "tiled weight boxes of whole 32-row pieces");
    constexpr int32_t kPieceRows = kRows % 64 == 0 ? 64 : 32;
    constexpr uint32_t kPieceBytes = kPieceRows * 128u;
#pragma unroll
    for (int32_t j = 0; j < kRows / kPieceRows; ++j) {
      const char* src = w_piece(kb, row + kPieceRows * j, expert);
      if (mask) {
        ptx::bulk_load_multicast(dst + j * kPieceBytes, src, kPieceBytes, bar, mask);
      } else {
        ptx::bulk_load(dst + j * kPieceBytes, src, kPieceBytes, bar);
      }
    }
  };
  auto load_w = [&](uint32_t dst, uint64_t* bar, int32_t kb, int32_t row, int32_t expert, uint16_t mask = 0) {
    if constexpr (!kTiledW) {
      if (mask) {
        ptx::tma_load_3d_multicast(dst, &w_map, bar, kb * BLOCK_K, row, expert, mask);
      } else {
        ptx::tma_load_3d(dst, &w_map, bar, kb * BLOCK_K, row, expert);
      }
    } else {
      // Clusters call it only for shared halves (see kShareTiledW), one CTA for whole tiles.
      load_tiled_w(dst, bar, kb, row, expert, mask, IntConst<kShareTiledW ? BLOCK_N / kCluster : BLOCK_N>{});
    }
  };
  constexpr uint32_t kHalfWBytes = (BLOCK_N / 2) * 128u;  // half a weight stage (clusters)
  // 2-CTA clusters (see "Clusters" in the header): tile `tile` of this CTA runs beside tile
  // `tile ^ 1` of the other one; `mate_live` says that tile exists.
  auto mate_live_of = [&](int32_t tile) { return kCluster > 1 && (tile ^ 1) < total_tiles; };
  // Dynamic tiles: this reader warp's view of the tile ring; the counters past the staged
  // gather's grid barrier: [2] the next tile (pair) to hand out, [3] the fetchers done.
  [[maybe_unused]] TileRing<kCluster, Storage> ring{ss, total_tiles, cta_rank};
  [[maybe_unused]] uint32_t* const sched = counters + 2;

  if (warp_group == 0) {
    // ------------------------------------------------------------------ producer
    if constexpr (kNumConsumers >= 2) ptx::setmaxnreg_dec<kPRegs>();
    const auto* a = static_cast<const uint16_t*>(a_ptr);
    const int32_t t = static_cast<int32_t>(threadIdx.x);  // 0..127
    const int32_t chunk = t & (Shape::kChunkStep - 1);     // cp.async: first 16-byte chunk of the 128-byte row
    const int32_t row0 = t >> (Shape::kCopyChunks == 1 ? 3 : 2);  // cp.async: rows row0, row0 + kCopyRowStep, ...
    // Who loads: every producer thread (cp.async gather), the first kGatherWarps warps (TMA
    // gather: thread i loads token rows i, i + 32 * kGatherWarps, ...; thread 0 also the
    // weight), else thread 0 (its warp walks the tiles with it: the mapper is warp-wide).
    constexpr int kGatherThreads = 32 * Shape::kGatherWarps;
    const bool loads = kCpAsyncGather ? true : (kRowTma ? t < kGatherThreads : t < 32);
    if (loads) {
      WarpSearchMapper mapper(tile_offsets, num_tasks);
      // Bytes one stage of a tile receives by TMA (counted on its full barrier): the weight tile,
      // plus without gather the token box (or, tall tiles, its live 64-row slices), plus with the
      // TMA gather 128 bytes per token row that exists.
      auto stage_bytes_of = [&](const TileCoord& tc) -> uint32_t {
        const int32_t rows = tc.row_end - tc.row0;
        // The boxes that start below the live rows (x_live_of is kXRows for one whole-tile box).
        const uint32_t x_box_bytes =
            static_cast<uint32_t>(ceil_div<int32_t>(x_live_of(rows), Shape::kXBoxRows) * Shape::kXBoxRows) * 128u;
        return Shape::kWBytes + (!kGather ? x_box_bytes : (kRowTma ? static_cast<uint32_t>(rows) * 128u : 0u));
      };
      // Steps [0, early) had their weight tile loaded (and expect_tx set) before the wait.
      uint32_t early = 0;
      if constexpr (kWeightsFirst) {
        // Its own mapper: a mapper only walks forward, and the loop below starts over.
        WarpSearchMapper early_mapper(tile_offsets, num_tasks);
        constexpr uint32_t kEarlyMax = static_cast<uint32_t>(kStages);
        for (int32_t tile = block_index; tile < total_tiles && early < kEarlyMax;
             tile += grid_blocks) {
          const TileCoord tc = locate_tile<BLOCK_M, kSplitK, kFitStep>(early_mapper.map(tile), task_rows, task_starts,
                                                             task_expert, num_k_blocks);
          for (int32_t kb = tc.k_block0; kb < tc.k_block0 + tc.k_blocks && early < kEarlyMax; ++kb, ++early) {
            if (t == 0) {  // stage `early` is fresh: nothing to wait for
              ptx::mbarrier_arrive_expect_tx(&ss.full[early], stage_bytes_of(tc));
              load_w(ptx::smem_addr(ss.w[early]), &ss.full[early], kb, tc.n_block * BLOCK_N, tc.expert);
            }
          }
        }
        if (!split_cold) ptx::griddep_wait();
      }
      uint32_t it = 0;  // running K step over all tiles of this block
      // Dynamic tiles: rank 0's warp 0 takes each tile (pair) from the counter when it starts
      // loading the tile before it, and publishes it when it starts loading it.
      [[maybe_unused]] const bool fetcher = kDynamic && cta_rank == 0;
      [[maybe_unused]] uint32_t jf = 0;
      [[maybe_unused]] uint32_t fetched = 0;
      if constexpr (kDynamic) {
        if (fetcher) fetched = ring.fetch(sched, lane);
      }
      auto next_tile = [&](int32_t tile) -> int32_t {
        if constexpr (kDynamic) {
          if (fetcher) ring.publish(jf++, fetched, lane);
          const int32_t next = ring.next(lane);
          if (fetcher && next < total_tiles) fetched = ring.fetch(sched, lane);
          return next;
        } else {
          return tile + grid_blocks;
        }
      };
      for (int32_t tile = kDynamic ? next_tile(0) : block_index; tile < total_tiles;
           tile = next_tile(tile)) {
        const TaskTile tt = mapper.map(tile);
        const TileCoord tc = locate_tile<BLOCK_M, kSplitK, kFitStep>(tt, task_rows, task_starts, task_expert, num_k_blocks);
        // Clusters: the two tiles share the weight tile when they are neighbours in one task
        // with the same n-block (tile ids are m-fastest within a task); then each CTA loads
        // half of it into both.
        bool share_w = false;
        if constexpr (kCluster > 1) {
          const int32_t mate_index = tt.index + ((tile ^ 1) - tile);
          const int32_t m_blocks = ceil_div<int32_t>(tc.m, BLOCK_M);
          share_w = mate_live_of(tile) && mate_index >= 0 && mate_index < m_blocks * n_blocks &&
                    mate_index / m_blocks == tc.n_block;
        }
        const int32_t tile_row0 = tc.row0;  // first row of this token block within the task
        // Token rows of this tile that exist (the rest are past the task's m, or another tile's).
        const int32_t x_rows = tc.row_end - tile_row0;
        const int32_t x_live = x_live_of(x_rows);  // token rows some consumer reads
        // Gather: source row in a of each token row this thread loads (-1 past the task's end).
        constexpr int kSrcRows = kRowTma ? Shape::kRowsPerGatherThread : (kGather ? Shape::kRowsPerProducerThread : 1);
        int32_t src_row[kSrcRows];
        if constexpr (kGather) {
#pragma unroll
          for (int i = 0; i < kSrcRows; ++i) {
            const int32_t r = kRowTma ? t + kGatherThreads * i : row0 + Shape::kCopyRowStep * i;
            src_row[i] = r < x_rows ? __ldg(gather_idx + tc.start + tile_row0 + r) : -1;
          }
        }
        // Without kGather: first row of a of this token block (rows < 2^31, see the header).
        const int32_t x_row0 = static_cast<int32_t>(tc.start + tile_row0);
        const int32_t w_row0 = tc.n_block * BLOCK_N;
        const uint32_t stage_bytes = stage_bytes_of(tc);
        for (int32_t kb = tc.k_block0; kb < tc.k_block0 + tc.k_blocks; ++kb, ++it) {
          const uint32_t s = it % kStages;
          const uint32_t phase = (it / kStages) & 1u;
          ptx::mbarrier_wait(&ss.empty[s], phase ^ 1u);
          if (t == 0) {
            if (it >= early) {  // else loaded before the wait
              ptx::mbarrier_arrive_expect_tx(&ss.full[s], stage_bytes);
              if constexpr (kCluster == 1) {
                load_w(ptx::smem_addr(ss.w[s]), &ss.full[s], kb, w_row0, tc.expert);
              } else if (share_w && kShareTiledW) {  // this CTA's half, into both CTAs
                load_w(ptx::smem_addr(ss.w[s]) + cta_rank * kHalfWBytes, &ss.full[s], kb,
                       w_row0 + static_cast<int32_t>(cta_rank) * (BLOCK_N / 2), tc.expert, 0x3);
              } else if constexpr (kTiledW) {  // the whole tile, into this CTA only
                load_tiled_w(ptx::smem_addr(ss.w[s]), &ss.full[s], kb, w_row0, tc.expert, 0, IntConst<BLOCK_N>{});
              } else {  // both halves, into this CTA only
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                  load_w(ptx::smem_addr(ss.w[s]) + h * kHalfWBytes, &ss.full[s], kb, w_row0 + h * (BLOCK_N / 2), tc.expert);
                }
              }
            }
            if constexpr (!kGather && Shape::kXBoxRows == kXRows) {
              ptx::tma_load_2d(ptx::smem_addr(ss.x[s]), &a_map, &ss.full[s], kb * BLOCK_K, x_row0);
            } else if constexpr (!kGather) {  // tall / fitted tiles: one box per live slice / N step
#pragma unroll
              for (int j = 0; j < kXRows / Shape::kXBoxRows; ++j) {
                if (j * Shape::kXBoxRows < x_live) {
                  ptx::tma_load_2d(ptx::smem_addr(ss.x[s]) + j * Shape::kXBoxRows * 128u, &a_map, &ss.full[s],
                                   kb * BLOCK_K, x_row0 + j * Shape::kXBoxRows);
                }
              }
            }
          }
          if constexpr (kRowTma) {
            // One {64, 1} box per token row; the hardware swizzles by destination address.
            const uint32_t x_base = ptx::smem_addr(ss.x[s]);
#pragma unroll
            for (int i = 0; i < kSrcRows; ++i) {
              const int32_t r = t + kGatherThreads * i;
              if (src_row[i] >= 0) {  // implies r < x_rows <= kXRows
                ptx::tma_load_2d(x_base + static_cast<uint32_t>(r) * 128u, &a_map, &ss.full[s], kb * BLOCK_K,
                                 src_row[i]);
              }
            }
          } else if constexpr (kGather) {
            const int32_t k_elem = kb * BLOCK_K + chunk * 8;
            const uint32_t x_base = ptx::smem_addr(ss.x[s]);
#pragma unroll
            for (int i = 0; i < kSrcRows; ++i) {
              const int32_t r = row0 + Shape::kCopyRowStep * i;
              if (r < kXRows && ((Shape::kSlices == 1 && !kFitted) || r < x_live)) {
#pragma unroll
                for (int j = 0; j < Shape::kCopyChunks; ++j) {
                  const int32_t c = chunk + Shape::kChunkStep * j;
                  const int32_t kc = k_elem + Shape::kChunkStep * 8 * j;
                  const bool valid = src_row[i] >= 0 && kc < k;  // K % 8 == 0: a chunk is all in or all out
                  const uint16_t* src = valid ? a + static_cast<int64_t>(src_row[i]) * lda + kc : a;
                  const uint32_t dst = x_base + static_cast<uint32_t>(r * 128 + ((c ^ (r & 7)) << 4));
                  ptx::cp_async_16(dst, src, valid ? 16u : 0u);
                }
              }
            }
            ptx::cp_async_mbarrier_arrive_noinc(&ss.full[s]);
          }
        }
      }
      if constexpr (kDynamic) {
        if (fetcher) {
          // The last fetcher to finish resets the counters for the next launch; in a cluster,
          // wait until the other CTA's readers have released the last entry (no remote arrival
          // may target an exited CTA).
          if (lane == 0 && ptx::atomic_add_acq_rel_gpu(sched + 1, 1u) == gridDim.x / kCluster - 1) {
            ptx::st_relaxed_gpu_u32(sched, 0u);
            ptx::st_relaxed_gpu_u32(sched + 1, 0u);
          }
          if constexpr (kCluster > 1) {
            const uint32_t last = jf - 1;
            ptx::mbarrier_wait(&ss.tile_empty[last % kTileSlots], (last / kTileSlots) & 1u);
          }
        }
      }
      if constexpr (kCluster > 1) {
        // Clusters: do not exit while the other CTA may still arrive on this CTA's empty
        // barriers: wait until every stage has been released (by both CTAs) once more.
        if (t == 0) {
          for (uint32_t i = 0; i < static_cast<uint32_t>(kStages); ++i, ++it) {
            ptx::mbarrier_wait(&ss.empty[it % kStages], ((it / kStages) & 1u) ^ 1u);
          }
        }
      }
    } else if (kStoreWarps && t >= 32) {
      if constexpr (kStoreWarps) {
        // Store warps: for each tile of the block, each consumer's staged output to global
        // memory, then its buffers are free again (signalled only when the consumer has a
        // next tile to stage: an unmatched arrival would stay on the barrier).
        auto* out = static_cast<typename Ops::elem*>(out_ptr);
        const int32_t n_out = kSiluMul ? n / 2 : n;
        WarpSearchMapper mapper(tile_offsets, num_tasks);
        auto next_tile = [&](int32_t tile) -> int32_t {
          if constexpr (kDynamic) {
            return ring.next(lane);
          } else {
            return tile + grid_blocks;
          }
        };
        for (int32_t tile = kDynamic ? next_tile(0) : block_index, next = 0; tile < total_tiles;
             tile = next) {
          const TileCoord tc = locate_tile<BLOCK_M>(mapper.map(tile), task_rows, task_starts, task_expert, num_k_blocks);
          next = next_tile(tile);  // dynamic tiles: waits until the producer has fetched it
          const bool more = next < total_tiles;
#pragma unroll 1
          for (int g = 0; g < kNumConsumers; ++g) {
            ptx::named_barrier_sync(kStagedBarrier + g, 128 + kStoreThreads);
            store_staged<BLOCK_N, kSiluMul>(ptx::smem_addr(ss.epi[g]), t - 32, tc, tc.m_block * BLOCK_M + 64 * g, n_out,
                                            out);
            if (more) ptx::named_barrier_arrive(kDrainedBarrier + g, 128 + kStoreThreads);
          }
        }
      }
    }
    // Do not leave copies (and their barrier arrivals) in flight behind an exited thread.
    if constexpr (kCpAsyncGather) ptx::cp_async_wait_all();
  } else {
    // ------------------------------------------------------------------ consumers
    if constexpr (kNumConsumers >= 2) ptx::setmaxnreg_inc<kCRegs>();
    const int32_t cw = warp_group - 1;     // consumer index: its 64-row slice, or (ping-pong) its tiles
    const int32_t warp_in_group = warp & 3;
    const int32_t tid = static_cast<int32_t>(threadIdx.x) - 128 * warp_group;  // 0..127 in the group
    const uint32_t bar_id = kEpilogueBarrier + static_cast<uint32_t>(cw);
    const uint32_t epi_base = ptx::smem_addr(ss.epi[cw]);
    auto* out = static_cast<typename Ops::elem*>(out_ptr);
    const int32_t n_out = kSiluMul ? n / 2 : n;
    WarpSearchMapper mapper(tile_offsets, num_tasks);
    // Ping-pong group g takes the block's tiles g, g + 2, ...; its K-step counter starts past
    // the other group's first tile when g = 1 and skips the other group's tile after each of its own.
    const int32_t tile_step = grid_blocks * (kPingpong ? 2 : 1);
    uint32_t it = kPingpong ? static_cast<uint32_t>(cw * num_k_blocks) : 0u;
    uint32_t chunk_count = 0;  // epilogue chunks stored so far (picks the staging buffer)
#ifdef SB_DEV_STALL
    // Dev only: this group's waits in clock cycles and their counts (see
    // benchmarks/dev_stage_wait_check.py): [0, 2) a stage's full barrier in the first kStages K
    // steps of a tile (two-slice tiles: with both slices live), [2, 4) in its later steps, [4, 6) the ping-pong order barrier,
    // [6, 8) a full barrier of a tile with fewer live slices, [8, 10) the group's whole run, [10,
    // 16) the later steps' waits (all tiles) by length: < 256, < 512, < 768, < 1024, < 2048, more.
    unsigned long long dev_stall[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0};
    // A full-barrier wait since t0 at K step kb, counted in the pair of slots from `slot`.
    auto dev_waited = [&](int slot, int32_t kb, long long t0) {
      const long long c = clock64() - t0;
      dev_stall[slot] += static_cast<unsigned long long>(c);
      dev_stall[slot + 1] += 1;
      if (kb >= kStages) dev_stall[10 + (c < 256 ? 0 : c < 512 ? 1 : c < 768 ? 2 : c < 1024 ? 3 : c < 2048 ? 4 : 5)] += 1;
    };
    const long long dev_start = clock64();
#endif
    // Releases a stage: one arrival per warp on this CTA's empty barrier, and in a cluster one on
    // the other CTA's too while it runs the mate tile (its producer may have loaded into this
    // CTA, and this CTA's into it); without a mate tile, two arrivals here.
    auto release = [&](uint32_t stage, bool mate_live) {
      if (lane == 0) {
        if constexpr (kCluster == 1) {
          ptx::mbarrier_arrive(&ss.empty[stage]);
        } else if (mate_live) {
          ptx::mbarrier_arrive(&ss.empty[stage]);
          ptx::mbarrier_arrive_cluster(ptx::mapa_shared(ptx::smem_addr(&ss.empty[stage]), cta_rank ^ 1u));
        } else {
          ptx::mbarrier_arrive_count(&ss.empty[stage], 2);
        }
      }
    };
    constexpr int kSlices = Shape::kSlices;
    float acc[kSlices][Shape::kAccum];  // one accumulator array per 64-row slice
#pragma unroll
    for (int h = 0; h < kSlices; ++h) {
#pragma unroll
      for (int i = 0; i < Shape::kAccum; ++i) acc[h][i] = 0.0f;
    }

    auto next_tile = [&](int32_t tile) -> int32_t {
      if constexpr (kDynamic) {
        return ring.next(lane);
      } else {
        return tile + tile_step;
      }
    };
    [[maybe_unused]] uint32_t tiles_done = 0;  // dynamic tiles: this group's tiles so far
    // Whether this group has had a tile before this one.
    auto not_first = [&](int32_t tile) {
      if constexpr (kDynamic) {
        return tiles_done > 0;
      } else {
        return tile != block_index;
      }
    };
    for (int32_t tile = kDynamic ? next_tile(0)
                                 : block_index + (kPingpong ? cw * grid_blocks : 0);
         tile < total_tiles; tile = next_tile(tile), ++tiles_done) {
      const TileCoord tc =
          locate_tile<BLOCK_M, kSplitK, kFitStep>(mapper.map(tile), task_rows, task_starts, task_expert, num_k_blocks);
      const bool mate_live = mate_live_of(tile);
      // Ping-pong: wait for the other group to have issued its previous tile's main loop.
      if constexpr (kPingpong) {
        if (tile != block_index) {
#ifdef SB_DEV_STALL
          const long long dev_t0 = clock64();
#endif
          ptx::named_barrier_sync(kOrderBarrier + cw, 256);
#ifdef SB_DEV_STALL
          dev_stall[4] += static_cast<unsigned long long>(clock64() - dev_t0);
          dev_stall[5] += 1;
#endif
        }
      }

      // Main loop: one wgmma-group per K step; the stage of step kb - 1 is released once
      // at most one group (step kb's) is still in flight.
      uint32_t prev_stage = 0;
      int32_t live = kSlices;  // tall tiles: this group's 64-row slices that hold rows of the task
      // Fitted tiles: the tokens this tile's wgmma computes (uniform over the warp group).
      [[maybe_unused]] const int32_t live_n = kFitted ? fitted_n(tc.row_end - tc.row0) : BLOCK_M;
      if constexpr (kSlices == 1) {
        // One wgmma chain of N = kN per K16 step (kN = Shape::kWgmmaN, or a fitted tile's N).
        auto main_loop = [&](auto n_c) {
          constexpr int kN = decltype(n_c)::value;
          for (int32_t kb = 0; kb < tc.k_blocks; ++kb, ++it) {
            const uint32_t s = it % kStages;
            const uint32_t phase = (it / kStages) & 1u;
            // No proxy fence between the cp.async gather's arrival and wgmma: like FlashAttention-3's
            // cp.async (paged KV) path, the consumer goes from the barrier straight to wgmma. A
            // fence.proxy.async here cost 8-10 % of the decode gate/up GEMMs (H200, 2026-11-28:
            // DeepSeek-V3 T=16 1.57 -> 1.42 ms, the same as without gather) and nothing at prefill.
#ifdef SB_DEV_STALL
            const long long dev_t0 = clock64();
#endif
            ptx::mbarrier_wait(&ss.full[s], phase);
#ifdef SB_DEV_STALL
            dev_waited(kb < kStages ? 0 : 2, kb, dev_t0);
#endif
            const uint32_t w_base = ptx::smem_addr(ss.w[s]);
            const uint32_t x_base = ptx::smem_addr(ss.x[s]);
            // 64-row slices are whole swizzle atoms (64 * 128 = 8192 bytes), so 1024-aligned.
            const uint32_t a_addr = kSwapAB ? w_base + cw * 64 * 128 : (kPingpong ? x_base : x_base + cw * 64 * 128);
            const uint32_t b_addr = kSwapAB ? x_base : w_base;
            const uint64_t desc_a = ptx::make_smem_desc_k_sw128(a_addr);
            const uint64_t desc_b = ptx::make_smem_desc_k_sw128(b_addr);
#pragma unroll
            for (int i = 0; i < Shape::kAccum; ++i) ptx::fence_operand(acc[0][i]);
            ptx::wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < BLOCK_K / 16; ++kk) {
              // +32 bytes per k16 step = +2 in the descriptor's 16-byte units.
              ptx::wgmma_m64k16<kN, kBf16>(acc[0], desc_a + 2 * kk, desc_b + 2 * kk, (kb > 0 || kk > 0) ? 1 : 0);
            }
            ptx::wgmma_commit_group();
#pragma unroll
            for (int i = 0; i < Shape::kAccum; ++i) ptx::fence_operand(acc[0][i]);
            ptx::wgmma_wait_group<1>();
            if (kb > 0) release(prev_stage, mate_live);
            prev_stage = s;
          }
        };
        if constexpr (kFitted) {
          with_fitted_n<Shape::kNStep, BLOCK_M>(live_n, main_loop);
        } else if constexpr (Shape::kDeadSkip) {
          // Cooperative 128- and 192-row tiles: a group whose 64 rows all lie past the task's end
          // runs no wgmma (the others' alone); it still waits on and releases every stage.
          live = tc.row_end - tc.row0 > cw * 64 ? 1 : 0;
          if (live) {
            main_loop(IntConst<Shape::kWgmmaN>{});
          } else {
            for (int32_t kb = 0; kb < tc.k_blocks; ++kb, ++it) {
              const uint32_t s = it % kStages;
              ptx::mbarrier_wait(&ss.full[s], (it / kStages) & 1u);
              if (kb > 0) release(prev_stage, mate_live);
              prev_stage = s;
            }
          }
        } else {
          main_loop(IntConst<Shape::kWgmmaN>{});
        }
      } else {
        // Tall tiles (normal mode): the loop above for the first kLive 64-row slices of this
        // group, those that hold rows of the task (the same count for the whole warp group),
        // one wgmma chain per slice and K16 step, all of a K step in one wgmma-group. kLive =
        // 0: the group has no rows in this tile; it still waits on each stage before it
        // releases it (an early arrival would count toward the stage's current phase).
        // Returns the stage of the last K step, not yet released.
        static_assert(kSlices == 2 && !kSwapAB, "two slices per consumer: normal mode");
        // First token row of this group's slices within the tile: 128 cw (tall), 0 (ping-pong).
        constexpr int32_t kGroupRows = kPingpong ? 0 : kSlices * 64;
        auto main_loop = [&](auto live_c) -> uint32_t {
          constexpr int kLive = decltype(live_c)::value;
          uint32_t last_stage = 0;
          for (int32_t kb = 0; kb < tc.k_blocks; ++kb, ++it) {
            const uint32_t s = it % kStages;
            const uint32_t phase = (it / kStages) & 1u;
#ifdef SB_DEV_STALL
            const long long dev_t0 = clock64();
#endif
            ptx::mbarrier_wait(&ss.full[s], phase);
#ifdef SB_DEV_STALL
            dev_waited(kLive == 2 ? (kb < kStages ? 0 : 2) : 6, kb, dev_t0);
#endif
            if constexpr (kLive > 0) {
              // Slice h of group cw: token rows [kGroupRows cw + 64 h, +64), 8192 bytes each.
              const uint64_t desc_a = ptx::make_smem_desc_k_sw128(ptx::smem_addr(ss.x[s]) + cw * kGroupRows * 128);
              const uint64_t desc_b = ptx::make_smem_desc_k_sw128(ptx::smem_addr(ss.w[s]));
#pragma unroll
              for (int h = 0; h < kLive; ++h) {
#pragma unroll
                for (int i = 0; i < Shape::kAccum; ++i) ptx::fence_operand(acc[h][i]);
              }
              ptx::wgmma_fence();
#pragma unroll
              for (int kk = 0; kk < BLOCK_K / 16; ++kk) {
#pragma unroll
                for (int h = 0; h < kLive; ++h) {  // +8192 bytes per slice = +512 descriptor units
                  ptx::wgmma_m64k16<Shape::kWgmmaN, kBf16>(acc[h], desc_a + (512 * h + 2 * kk), desc_b + 2 * kk,
                                                           (kb > 0 || kk > 0) ? 1 : 0);
                }
              }
              ptx::wgmma_commit_group();
#pragma unroll
              for (int h = 0; h < kLive; ++h) {
#pragma unroll
                for (int i = 0; i < Shape::kAccum; ++i) ptx::fence_operand(acc[h][i]);
              }
              ptx::wgmma_wait_group<1>();
            }
            if (kb > 0) release(last_stage, mate_live);
            last_stage = s;
          }
          return last_stage;
        };
        const int32_t rows = tc.m - tc.m_block * BLOCK_M - cw * kGroupRows;  // this group's rows, if > 0
        live = rows > 64 ? 2 : (rows > 0 ? 1 : 0);
        if (live == 2) {
          prev_stage = main_loop(IntConst<2>{});
        } else if (live == 1) {
          prev_stage = main_loop(IntConst<1>{});
        } else {
          prev_stage = main_loop(IntConst<0>{});
        }
      }
      if constexpr (kPingpong) {
        // Every full barrier of this tile has been waited on: hand the tensor cores to the
        // other group (if it has a next tile: an unmatched arrival would stay on the barrier).
        if (tile + grid_blocks < total_tiles) {
          ptx::named_barrier_arrive(kOrderBarrier + (1 - cw), 256);
        }
        it += static_cast<uint32_t>(num_k_blocks);  // the other group's tile
      }
      ptx::wgmma_wait_group<0>();
#pragma unroll
      for (int h = 0; h < kSlices; ++h) {
#pragma unroll
        for (int i = 0; i < Shape::kAccum; ++i) ptx::fence_operand(acc[h][i]);
      }
      release(prev_stage, mate_live);

      // Epilogue through this group's staging buffers (one pass per live slice).
      if constexpr (kStoreWarps) {
        // Stage the whole output tile and hand it to the store warps (they drained the
        // previous one before this group may write its buffers again).
        if (not_first(tile)) ptx::named_barrier_sync(kDrainedBarrier + cw, 128 + kStoreThreads);
        if (live) {  // a dead group's rows are past the task's end: the store warps skip them
#pragma unroll
          for (int ch = 0; ch < epi_chunks<BLOCK_N, kSiluMul>(); ++ch) {
            stage_chunk<Ops, BLOCK_N, kSiluMul>(acc[0], ch, epi_base + ch * (64 * kEpiCols * 2), warp_in_group, lane);
          }
        }
        ptx::named_barrier_arrive(kStagedBarrier + cw, 128 + kStoreThreads);
      } else if constexpr (!kSwapAB) {
        const int32_t row0 = tc.m_block * BLOCK_M + (kPingpong ? 0 : cw * kSlices * 64);
#pragma unroll
        for (int h = 0; h < kSlices; ++h) {
          if (h < live) {
            epilogue_normal<Ops, BLOCK_N, kSiluMul>(acc[h], epi_base, chunk_count, bar_id, tc, row0 + 64 * h, n_out,
                                                    out, warp_in_group, lane, tid);
          }
        }
      } else {
        if constexpr (kSplitK > 1) {  // only the last slice to arrive stores the summed tile
          if (!splitk_reduce<kSplitK, kNumConsumers>(acc[0], splitk_workspace, splitk_counters, tile, cw, bar_id,
                                                     tid)) {
            continue;
          }
        }
        epilogue_swap<Ops, BLOCK_M, BLOCK_N, kSiluMul>(acc[0], epi_base, chunk_count, bar_id, tc, cw, n_out, out,
                                                       warp_in_group, lane, tid, live_n);
      }
    }
#ifdef SB_DEV_STALL
    if (tid == 0 && counters != nullptr) {  // launches with a counter buffer only (staged, dynamic)
      dev_stall[8] = static_cast<unsigned long long>(clock64() - dev_start);
      auto* dst = reinterpret_cast<unsigned long long*>(counters + 64);
      for (int i = 0; i < 16; ++i) atomicAdd(dst + i, dev_stall[i]);
    }
#endif
  }
#ifdef SB_DEV_TRACE
  __syncthreads();
  SB_TRACE(2, dev_now());
#endif
  if (split_cold) ptx::griddep_wait();  // end after the hot launch (see the header)
}

}  // namespace moe
}  // namespace staticbatch
