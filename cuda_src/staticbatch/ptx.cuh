// staticbatch: one-instruction PTX wrappers for Hopper (sm_90a).
//
// Each wrapper is one PTX instruction (or one instruction plus the predicate it needs), so
// kernels read as the sequence of hardware operations they issue. Shared-memory addresses
// are 32-bit `.shared::cta` addresses (see smem_addr). Everything here needs sm_90a
// (wgmma, setmaxnreg) or sm_90 (mbarrier tx counts, cp.async.bulk.tensor).
#pragma once

#include <staticbatch/common.cuh>

namespace staticbatch {
namespace ptx {

// A CUtensorMap as the kernel receives it: 128 opaque bytes, 64-byte aligned. <cuda.h> is
// not available under NVRTC, so the type is declared here; the host builds the bytes with
// cuTensorMapEncodeTiled and passes them by value as a `const __grid_constant__` parameter.
struct alignas(64) TmaDescriptor {
  unsigned long long data[16];
};
static_assert(sizeof(TmaDescriptor) == 128, "TmaDescriptor must be 128 bytes");

// ---------------------------------------------------------------------------------------
// Addresses and registers
// ---------------------------------------------------------------------------------------

// 32-bit shared-memory address of a generic pointer into shared memory.
SB_DEVICE uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Lowers this warp group's register budget (producer warp groups).
template <int kRegs>
SB_DEVICE void setmaxnreg_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" : : "n"(kRegs));
}

// Raises this warp group's register budget (consumer warp groups).
template <int kRegs>
SB_DEVICE void setmaxnreg_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" : : "n"(kRegs));
}

// Index of the warp within the block, uniform across the warp (helps the compiler keep
// warp-role branches uniform).
SB_DEVICE int32_t warp_id_uniform() {
  return __shfl_sync(0xffffffffu, static_cast<int32_t>(threadIdx.x >> 5), 0);
}

// ---------------------------------------------------------------------------------------
// mbarrier
// ---------------------------------------------------------------------------------------

SB_DEVICE void mbarrier_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" : : "r"(smem_addr(bar)), "r"(count) : "memory");
}

// Makes mbarrier.init visible to the async proxy (TMA) and to the other threads of the cluster.
SB_DEVICE void fence_barrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" : : : "memory");
}

// Arrives on the barrier (one arrival).
SB_DEVICE void mbarrier_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" : : "r"(smem_addr(bar)) : "memory");
}

// Adds `bytes` to the barrier's expected transaction count and arrives (one arrival).
SB_DEVICE void mbarrier_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n"
               :
               : "r"(smem_addr(bar)), "r"(bytes)
               : "memory");
}

// Arrives `count` times on the barrier at once (sm_90).
SB_DEVICE void mbarrier_arrive_count(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0], %1;\n" : : "r"(smem_addr(bar)), "r"(count) : "memory");
}

// Arrives on a barrier of another CTA of the cluster (`cluster_addr` from mapa_shared), with
// the default semantics (release, CTA scope), as CUTLASS's ClusterBarrier::arrive does. The
// explicit .release.cluster form made the grouped GEMM's consumers 17-90 % slower (H200,
// 2026-11-28): it orders all of the thread's earlier memory operations, the epilogue's global
// stores included, at cluster scope. A consumer only signals that its wgmma reads of a stage
// are done, which wgmma.wait_group has already made complete.
SB_DEVICE void mbarrier_arrive_cluster(uint32_t cluster_addr) {
  asm volatile("mbarrier.arrive.shared::cluster.b64 _, [%0];\n" : : "r"(cluster_addr) : "memory");
}

// Arrives on a barrier of another CTA of the cluster with release semantics at cluster scope:
// this thread's earlier memory operations (a shared::cluster store, a read of a value the other
// CTA will overwrite) are ordered before the arrival. For the rare messages between the CTAs of
// a cluster (the dynamic tile ring), not for the consumers' per-stage releases (see above).
SB_DEVICE void mbarrier_arrive_release_cluster(uint32_t cluster_addr) {
  asm volatile("mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%0];\n" : : "r"(cluster_addr) : "memory");
}

// Stores a 32-bit value into the shared memory of a CTA of the cluster (`cluster_addr` from
// mapa_shared).
SB_DEVICE void st_shared_cluster_u32(uint32_t cluster_addr, uint32_t v) {
  asm volatile("st.shared::cluster.u32 [%0], %1;\n" : : "r"(cluster_addr), "r"(v) : "memory");
}

// Waits until the phase with parity `parity` has completed, with acquire semantics at cluster
// scope (pairs with mbarrier_arrive_release_cluster from another CTA of the cluster).
SB_DEVICE void mbarrier_wait_cluster(uint64_t* bar, uint32_t parity) {
  uint32_t done = 0;
  while (!done) {
    asm volatile(
        "{\n.reg .pred p;\n"
        "mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(smem_addr(bar)), "r"(parity)
        : "memory");
  }
}

// One probe: true when the phase with parity `parity` has completed.
SB_DEVICE bool mbarrier_try_wait(uint64_t* bar, uint32_t parity) {
  uint32_t done;
  asm volatile(
      "{\n.reg .pred p;\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
      "selp.u32 %0, 1, 0, p;\n}\n"
      : "=r"(done)
      : "r"(smem_addr(bar)), "r"(parity)
      : "memory");
  return done != 0;
}

// Waits until the phase with parity `parity` has completed (acquire, CTA scope).
SB_DEVICE void mbarrier_wait(uint64_t* bar, uint32_t parity) {
  while (!mbarrier_try_wait(bar, parity)) {
  }
}

// ---------------------------------------------------------------------------------------
// cp.async (16-byte, L2 only) and its mbarrier hook
// ---------------------------------------------------------------------------------------

// Copies `src_bytes` (0..16) bytes from global to shared and zero-fills the rest of the 16.
// With src_bytes == 0 nothing is read (the address must still be a valid global address).
SB_DEVICE void cp_async_16(uint32_t dst, const void* src, uint32_t src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
               :
               : "r"(dst), "l"(src), "r"(src_bytes)
               : "memory");
}

// Arrives on `bar` once every cp.async this thread issued before has completed. `.noinc`:
// the arrival is one of the arrivals the barrier was initialised to expect.
SB_DEVICE void cp_async_mbarrier_arrive_noinc(uint64_t* bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" : : "r"(smem_addr(bar)) : "memory");
}

// Waits until every cp.async this thread issued has completed.
SB_DEVICE void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" : : : "memory"); }

// ---------------------------------------------------------------------------------------
// TMA
// ---------------------------------------------------------------------------------------

// Loads the 3-D box at coordinates (c0 innermost, c1, c2) of the tensor map into shared
// memory at `dst`; the bytes are counted on `bar`'s transaction count.
SB_DEVICE void tma_load_3d(uint32_t dst, const TmaDescriptor* map, uint64_t* bar, int32_t c0,
                           int32_t c1, int32_t c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%3, %4, %5}], [%2];\n"
      :
      : "r"(dst), "l"(reinterpret_cast<uint64_t>(map)), "r"(smem_addr(bar)), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
}

// tma_load_3d into every CTA of the cluster named in `cta_mask` (bit i: rank i): the box lands
// at offset `dst` of each one's shared memory and its bytes are counted on the barrier at
// `bar`'s offset in each of them.
SB_DEVICE void tma_load_3d_multicast(uint32_t dst, const TmaDescriptor* map, uint64_t* bar, int32_t c0, int32_t c1,
                                     int32_t c2, uint16_t cta_mask) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster"
      " [%0], [%1, {%3, %4, %5}], [%2], %6;\n"
      :
      : "r"(dst), "l"(reinterpret_cast<uint64_t>(map)), "r"(smem_addr(bar)), "r"(c0), "r"(c1), "r"(c2),
        "h"(cta_mask)
      : "memory");
}

// Copies `bytes` (a multiple of 16) contiguous bytes from global `src` (16-byte aligned) to
// shared memory at `dst`; the bytes are counted on `bar`'s transaction count. No swizzle.
SB_DEVICE void bulk_load(uint32_t dst, const void* src, uint32_t bytes, uint64_t* bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n"
               :
               : "r"(dst), "l"(src), "r"(bytes), "r"(smem_addr(bar))
               : "memory");
}

// bulk_load into every CTA of the cluster named in `cta_mask`, at offset `dst` of each one's
// shared memory, counted on the barrier at `bar`'s offset in each of them.
SB_DEVICE void bulk_load_multicast(uint32_t dst, const void* src, uint32_t bytes, uint64_t* bar, uint16_t cta_mask) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1], %2, [%3], %4;\n"
      :
      : "r"(dst), "l"(src), "r"(bytes), "r"(smem_addr(bar)), "h"(cta_mask)
      : "memory");
}

// Loads the 2-D box at coordinates (c0 innermost, c1) of the tensor map into shared memory
// at `dst`; the bytes (the whole box, out-of-bounds elements zero-filled) are counted on
// `bar`'s transaction count.
SB_DEVICE void tma_load_2d(uint32_t dst, const TmaDescriptor* map, uint64_t* bar, int32_t c0, int32_t c1) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%3, %4}], [%2];\n"
      :
      : "r"(dst), "l"(reinterpret_cast<uint64_t>(map)), "r"(smem_addr(bar)), "r"(c0), "r"(c1)
      : "memory");
}

// Brings the tensor map into the cache ahead of first use.
SB_DEVICE void tma_prefetch_descriptor(const TmaDescriptor* map) {
  asm volatile("prefetch.tensormap [%0];\n" : : "l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

// Starts the 128-byte line holding `p` on its way into L2 (a hint: no result, no fault).
SB_DEVICE void prefetch_l2(const void* p) {
  asm volatile("prefetch.global.L2 [%0];\n" : : "l"(reinterpret_cast<uint64_t>(p)));
}

// ---------------------------------------------------------------------------------------
// Thread block clusters
// ---------------------------------------------------------------------------------------

// This CTA's rank in its cluster.
SB_DEVICE uint32_t cluster_ctarank() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
  return r;
}

// Every thread of every CTA of the cluster: arrive (release) and wait (acquire).
SB_DEVICE void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" : : : "memory");
}

// The address in CTA `cta` of the cluster of what lies at `addr` in this CTA's shared memory.
SB_DEVICE uint32_t mapa_shared(uint32_t addr, uint32_t cta) {
  uint32_t r;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(r) : "r"(addr), "r"(cta));
  return r;
}

// ---------------------------------------------------------------------------------------
// Named barriers, shared and global memory
// ---------------------------------------------------------------------------------------

// Waits on hardware barrier `id` (1..15; 0 is __syncthreads) until `count` threads (a
// multiple of 32, whole warps) have arrived or synced on it.
SB_DEVICE void named_barrier_sync(uint32_t id, uint32_t count) {
  asm volatile("bar.sync %0, %1;\n" : : "r"(id), "r"(count) : "memory");
}

// Arrives on hardware barrier `id` without waiting (the producer side of a signal).
SB_DEVICE void named_barrier_arrive(uint32_t id, uint32_t count) {
  asm volatile("bar.arrive %0, %1;\n" : : "r"(id), "r"(count) : "memory");
}

SB_DEVICE void st_shared_b32(uint32_t addr, uint32_t v) {
  asm volatile("st.shared.b32 [%0], %1;\n" : : "r"(addr), "r"(v) : "memory");
}

SB_DEVICE void st_shared_b16(uint32_t addr, unsigned short v) {
  asm volatile("st.shared.b16 [%0], %1;\n" : : "r"(addr), "h"(v) : "memory");
}

// 16-byte shared-memory load (addr 16-byte aligned).
SB_DEVICE uint4 ld_shared_v4(uint32_t addr) {
  uint4 v;
  asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "r"(addr)
               : "memory");
  return v;
}

// 16-byte global store (ptr 16-byte aligned).
SB_DEVICE void st_global_v4(void* ptr, uint4 v) {
  asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};\n"
               :
               : "l"(ptr), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w)
               : "memory");
}

// ---------------------------------------------------------------------------------------
// Global-memory hand-off between blocks (split-K partial sums)
// ---------------------------------------------------------------------------------------

// bar.sync on hardware barrier `id` for `count` threads that also ORs `pred` over them:
// every participating thread gets true if any of them passed true.
SB_DEVICE bool named_barrier_sync_or(uint32_t id, uint32_t count, bool pred) {
  uint32_t r;
  asm volatile(
      "{\n .reg .pred p, q;\n setp.ne.u32 p, %1, 0;\n bar.red.or.pred q, %2, %3, p;\n selp.u32 %0, 1, 0, q;\n}\n"
      : "=r"(r)
      : "r"(static_cast<uint32_t>(pred)), "r"(id), "r"(count)
      : "memory");
  return r != 0;
}

// Orders this thread's earlier memory accesses before its later ones at GPU scope
// (fence.acq_rel.gpu: __threadfence()).
SB_DEVICE void fence_acq_rel_gpu() { asm volatile("fence.acq_rel.gpu;\n" : : : "memory"); }

// Atomic add at GPU scope with acquire-release semantics; returns the old value.
SB_DEVICE uint32_t atomic_add_acq_rel_gpu(uint32_t* ptr, uint32_t v) {
  uint32_t old;
  asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], %2;\n" : "=r"(old) : "l"(ptr), "r"(v) : "memory");
  return old;
}

// Relaxed GPU-scope 32-bit store (a counter reset).
SB_DEVICE void st_relaxed_gpu_u32(uint32_t* ptr, uint32_t v) {
  asm volatile("st.relaxed.gpu.global.u32 [%0], %1;\n" : : "l"(ptr), "r"(v) : "memory");
}

// Acquire GPU-scope 32-bit load (a flag another block releases).
SB_DEVICE uint32_t ld_acquire_gpu_u32(const uint32_t* ptr) {
  uint32_t v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(ptr) : "memory");
  return v;
}

// Release GPU-scope 32-bit store (publishes this thread's earlier writes with the value).
SB_DEVICE void st_release_gpu_u32(uint32_t* ptr, uint32_t v) {
  asm volatile("st.release.gpu.global.u32 [%0], %1;\n" : : "l"(ptr), "r"(v) : "memory");
}

// Orders this thread's generic-proxy global accesses (including writes it has acquired from
// other threads) before its later async-proxy ones (TMA loads).
SB_DEVICE void fence_proxy_async_global() {
  asm volatile("fence.proxy.async.global;\n" : : : "memory");
}

// 16-byte read-only global load that does not allocate in L1 (a streaming copy).
SB_DEVICE uint4 ld_global_nc_v4(const void* ptr) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.b32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(ptr));
  return v;
}

// Programmatic dependent launch (sm_90). Lets the next kernel on the stream, if it was launched
// as a programmatic dependent, be scheduled once every block of this grid has issued this (or
// exited). A no-op otherwise.
SB_DEVICE void griddep_launch_dependents() { asm volatile("griddepcontrol.launch_dependents;\n" : : : "memory"); }

// Waits until the grid this kernel programmatically depends on has completed and its memory
// operations are visible. Returns at once when the kernel was launched normally.
SB_DEVICE void griddep_wait() { asm volatile("griddepcontrol.wait;\n" : : : "memory"); }

// Waits about `ns` nanoseconds (a polite spin).
SB_DEVICE void nanosleep(uint32_t ns) { asm volatile("nanosleep.u32 %0;\n" : : "r"(ns)); }

// 16-byte global store of four floats (ptr 16-byte aligned).
SB_DEVICE void st_global_v4_f32(float* ptr, float a, float b, float c, float d) {
  asm volatile("st.global.v4.f32 [%0], {%1, %2, %3, %4};\n" : : "l"(ptr), "f"(a), "f"(b), "f"(c), "f"(d) : "memory");
}

// 16-byte global load of four floats cached in L2 only (ld.global.cg: never a stale L1
// line of data another SM wrote during this kernel). ptr 16-byte aligned.
SB_DEVICE float4 ld_global_cg_v4_f32(const float* ptr) {
  float4 v;
  asm volatile("ld.global.cg.v4.f32 {%0, %1, %2, %3}, [%4];\n"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
               : "l"(ptr)
               : "memory");
  return v;
}

// ---------------------------------------------------------------------------------------
// wgmma
// ---------------------------------------------------------------------------------------

// Shared-memory matrix descriptor for a K-major operand stored with the 128-byte swizzle:
// rows of 64 bf16/fp16 (128 bytes), 8-row swizzle atoms of 1024 bytes (the stride byte
// offset), the tile's base 1024-byte aligned. The leading byte offset is unused for
// swizzled K-major layouts (set to 1 as is customary). Advance the start address by 32 bytes
// (2 in descriptor units) per k16 step inside the 128-byte row.
SB_DEVICE uint64_t make_smem_desc_k_sw128(uint32_t smem_address) {
  uint64_t desc = 0;
  desc |= static_cast<uint64_t>((smem_address & 0x3FFFFu) >> 4);  // bits 0-13: start address >> 4
  desc |= static_cast<uint64_t>(1) << 16;                         // bits 16-29: leading byte offset >> 4
  desc |= static_cast<uint64_t>(1024 >> 4) << 32;                 // bits 32-45: stride byte offset >> 4
  desc |= static_cast<uint64_t>(1) << 62;                         // bits 62-63: 1 = 128-byte swizzle
  return desc;
}

// Makes register accumulators written by ordinary instructions visible to wgmma (issue
// before the first wgmma of a batch).
SB_DEVICE void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" : : : "memory"); }

// Closes the batch of wgmma issued since the last commit into one wgmma-group.
SB_DEVICE void wgmma_commit_group() { asm volatile("wgmma.commit_group.sync.aligned;\n" : : : "memory"); }

// Waits until at most kPending wgmma-groups of this warp group are still in flight.
template <int kPending>
SB_DEVICE void wgmma_wait_group() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" : : "n"(kPending) : "memory");
}

// Keeps the compiler from moving reads/writes of an accumulator register across wgmma
// fence/commit/wait (it does not know the asm touches them). Not an instruction.
SB_DEVICE void fence_operand(float& r) { asm volatile("" : "+f"(r)::"memory"); }

#include <staticbatch/wgmma_shapes.cuh>

}  // namespace ptx
}  // namespace staticbatch
