"""Tutorial: a custom task kind, a segmented sum over segments of very different lengths.

What you will learn
-------------------
* how to describe irregular work as tasks and cut them into uniform tiles (a plan),
* how to write a task kind: a CUDA tile body, its parameters and its tiling,
* how the framework turns it into one persistent kernel that finds each block's
  (task, tile) on the device,
* how to build the plan on the GPU (no host sync) and chain two batched kernels,
* how to check the result against torch.

Run it: ``python examples/custom_task.py``. It needs a CUDA GPU; without one it explains
itself and exits 0.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import staticbatch as sb  # noqa: E402

# %% Motivation ----------------------------------------------------------------------------
# We want out[i] = sum(x[start_i : start_i + len_i]) for thousands of segments whose lengths
# range from 0 to millions. One block per segment starves the GPU when one segment is huge;
# one launch per segment drowns in launch overhead. Static batching cuts every segment into
# tiles of TILE elements, so every block does the same amount of work, and runs all tiles
# of all segments in one kernel.

TILE = 4096  # elements of a segment per tile
THREADS = 256

# %% Task decomposition --------------------------------------------------------------------
# Task i = segment i, size len_i (1-D). ceil(len_i / TILE) tiles; empty segments get none.
# Stage 1 writes one partial sum per tile (partial[tile id]); stage 2 is a second task kind
# whose task i has as many elements as segment i had tiles, and sums those partials. Both
# stages are deterministic: no atomics.

# %% Kernel --------------------------------------------------------------------------------
# The body sees `p` (the parameters, as a struct) and `t` (the tile): t.task, t.index,
# t.coord[0] (== t.index in 1-D), t.size[0] (the segment length), t.start (where the segment
# begins: the prefix sum of lengths, 64-bit) and t.id (the global tile id).

PARTIAL_BODY = r"""
__device__ float block_sum(float v) {
  __shared__ float warp_sums[32];
  for (int d = 16; d > 0; d >>= 1) v += __shfl_xor_sync(0xffffffffu, v, d);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = v;
  __syncthreads();
  v = threadIdx.x < (blockDim.x >> 5) ? warp_sums[threadIdx.x] : 0.f;
  if (threadIdx.x < 32) {
    for (int d = 16; d > 0; d >>= 1) v += __shfl_xor_sync(0xffffffffu, v, d);
  }
  return v;  // valid in thread 0
}

__device__ void tile(const Params& p, const Tile& t) {
  const int64_t begin = t.start + int64_t(t.coord[0]) * kTileShape[0];
  const int64_t end = min(t.start + t.size[0], begin + kTileShape[0]);
  float acc = 0.f;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) acc += p.x[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) p.partial[t.id] = acc;
}
"""

FINISH_BODY = r"""
// Task i has one element per stage-1 tile of segment i; t.start is the first of them
// (the stage-2 plan's prefix sum of sizes is the stage-1 plan's tile prefix sum).
__device__ void tile(const Params& p, const Tile& t) {
  if (threadIdx.x == 0) {
    float acc = 0.f;
    for (int64_t i = 0; i < t.size[0]; ++i) acc += p.partial[t.start + i];
    p.out[t.task] = acc;
  }
}
"""


def segment_sum_kind() -> sb.TaskKind:
    return sb.TaskKind("segment_partial", TILE, ["const float* x", "float* partial"], PARTIAL_BODY, block_size=THREADS)


def segment_finish_kind() -> sb.TaskKind:
    # One tile per segment whatever its tile count (a segment of 2^31 floats has 2^19 partials).
    return sb.TaskKind("segment_finish", 1 << 30, ["const float* partial", "float* out"], FINISH_BODY, block_size=32)


# %% Wrapper -------------------------------------------------------------------------------
def segment_sum(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Sum ``x`` over consecutive segments.

    Parameters
    ----------
    x : torch.Tensor
        float32 ``[sum(lengths)]``, cuda.
    lengths : torch.Tensor
        int32 or int64 ``[num_segments]``, cuda. Zero-length segments sum to 0.

    Returns
    -------
    torch.Tensor
        float32 ``[num_segments]``.

    Both plans are built on the device, so the whole function runs without a host sync and
    can be captured in a CUDA graph.
    """
    partial_kernel = sb.compile_kernel(segment_sum_kind())
    finish_kernel = sb.compile_kernel(segment_finish_kind())
    plan1 = sb.device_plan(lengths, TILE)
    # The tile count of a device plan is known only on the device: size the scratch for the
    # worst case (every segment rounds up by one tile) instead of syncing.
    bound = x.numel() // TILE + lengths.numel() + 1
    partial = torch.empty(bound, dtype=torch.float32, device=x.device)
    partial_kernel(plan1, x, partial)
    plan2 = sb.device_plan(torch.diff(plan1.tile_offsets), 1 << 30)
    out = torch.empty(lengths.numel(), dtype=torch.float32, device=x.device)
    finish_kernel(plan2, partial, out)
    return out


# %% Check ---------------------------------------------------------------------------------
def check() -> None:
    g = torch.Generator(device="cuda").manual_seed(0)
    lengths = torch.cat(
        [
            torch.tensor([0, 1, TILE - 1, TILE, TILE + 1, 3_000_000, 0], device="cuda"),
            torch.randint(0, 20_000, (2000,), device="cuda", generator=g),
        ]
    )
    x = torch.randn(int(lengths.sum()), device="cuda", generator=g)
    got = segment_sum(x, lengths)
    ids = torch.repeat_interleave(torch.arange(lengths.numel(), device="cuda"), lengths)
    ref = torch.zeros(lengths.numel(), dtype=torch.float64, device="cuda").index_add_(0, ids, x.double())
    err = ((got.double() - ref).norm() / ref.norm()).item()
    print(f"segments: {lengths.numel()}, elements: {x.numel()}, relative error vs float64 torch: {err:.2e}")
    if not err < 1e-5:
        raise SystemExit(f"FAILED: relative error {err:.2e}")


# %% Benchmark -----------------------------------------------------------------------------
def benchmark() -> None:
    lengths = torch.randint(0, 200_000, (4000,), device="cuda")
    lengths[::97] = 5_000_000  # a few huge segments
    x = torch.randn(int(lengths.sum()), device="cuda")
    ids = torch.repeat_interleave(torch.arange(lengths.numel(), device="cuda"), lengths)

    def ours() -> torch.Tensor:
        return segment_sum(x, lengths)

    def torch_index_add() -> torch.Tensor:
        return torch.zeros(lengths.numel(), device="cuda").index_add_(0, ids, x)

    for name, fn in (("staticbatch", ours), ("torch index_add_", torch_index_add)):
        fn()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(20):
            fn()
        stop.record()
        torch.cuda.synchronize()
        ms = start.elapsed_time(stop) / 20
        print(f"{name:>18}: {ms:.3f} ms, {x.numel() * 4 / ms / 1e9:.0f} GB/s read")


def main() -> int:
    if not torch.cuda.is_available():
        print(
            "This tutorial launches CUDA kernels and no CUDA GPU is available here.\n"
            "Read the source for the walk-through; the kernels compile anywhere NVRTC is installed:"
        )
        try:
            k = sb.compile_kernel(segment_sum_kind(), arch="sm_90a")
            print(f"  compiled {k.name} for sm_90a ({len(k.compiled.cubin)} bytes of cubin)")
        except Exception as exc:  # explain, don't fail: this is the no-GPU path
            print(f"  (NVRTC unavailable: {exc})")
        return 0
    check()
    benchmark()
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
