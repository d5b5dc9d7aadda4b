"""How much does finding (task, tile) cost per tile?

Mappers compared, each in a persistent kernel (one block of 128 threads per SM, like the
GEMM) whose tile body does nothing but keep the mapper's result alive:
  none           tile -> (0, tile): the loop alone, the baseline subtracted from the others
  binary_search  binary search over the prefix sums (the method's mapper)
  warp_search    warp-cooperative 32-ary search over the prefix sums
  warp_scan      ballot + popc over prefix sums held in registers (<= 32*slots tasks)
  table          a per-tile (task, index) table in global memory, as vLLM's align kernel
                 and FlashInfer write: reading it in the loop, plus (separately) the extra
                 kernel that writes O(#tiles) entries
Also timed: device_plan (building the prefix sums on the GPU from device sizes).

Per-tile cost = (kernel time - baseline time) x blocks / tiles: the latency one block
spends finding one tile. Compared with the time of one 128x256x64 bf16 GEMM step on one SM
at the measured ceiling (2*128*256*64 FLOP / (755 TFLOP/s / 132 SMs) = 0.73 us) and with a
whole 128x256 tile at K = 4096 (64 such steps).

Run: python benchmarks/bench_mapper.py
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from common import COMPUTE_CEILING_TFLOPS, save, time_cuda

import staticbatch as sb

BODY = r"""
__device__ void tile(const Params& p, const Tile& t) {
  if (t.task == p.sentinel) p.out[t.index & 1] = t.coord[0];
}
"""

NONE_SRC = r"""
#include <staticbatch/kernel.cuh>
using namespace staticbatch;
// The loop without a mapper: the baseline.
extern "C" __global__ void __launch_bounds__(128) sb_bench_loop_none(const int32_t* tile_offsets, int32_t num_tasks, int32_t* out, int32_t sentinel) {
  const int32_t total = tile_offsets[num_tasks];
  for (int32_t tile = blockIdx.x; tile < total; tile += gridDim.x) {
    if (tile == sentinel) out[0] = tile;
    __syncthreads();
  }
}
// The per-tile table: written by one more kernel (one thread per task writes its tiles)...
extern "C" __global__ void sb_bench_table_build(const int32_t* tile_offsets, int32_t num_tasks, int2* table) {
  for (int32_t task = blockIdx.x * blockDim.x + threadIdx.x; task < num_tasks; task += gridDim.x * blockDim.x) {
    const int32_t a = tile_offsets[task], b = tile_offsets[task + 1];
    for (int32_t i = a; i < b; ++i) table[i] = make_int2(task, i - a);
  }
}
// ...and read in the loop.
extern "C" __global__ void __launch_bounds__(128) sb_bench_loop_table(const int32_t* tile_offsets, int32_t num_tasks, const int2* table, int32_t* out, int32_t sentinel) {
  const int32_t total = tile_offsets[num_tasks];
  for (int32_t tile = blockIdx.x; tile < total; tile += gridDim.x) {
    const int2 tt = table[tile];
    if (tt.x == sentinel) out[tt.y & 1] = tt.y;
    __syncthreads();
  }
}
"""


def main() -> int:
    if not torch.cuda.is_available():
        print("bench_mapper needs a CUDA GPU (it times kernels); none is available here.")
        return 0
    dev = torch.device("cuda")
    sms = torch.cuda.get_device_properties(dev).multi_processor_count
    step_us = 2 * 128 * 256 * 64 / (COMPUTE_CEILING_TFLOPS * 1e12 / sms) * 1e6
    kind = sb.TaskKind("bench_map", 1, ["int32_t* out", "int32_t sentinel"], BODY, block_size=128)
    binary = sb.compile_kernel(kind, "binary_search")
    search = sb.compile_kernel(kind, "warp_search")
    none_src = sb.compile_source(NONE_SRC, "sb_bench_loop_none")
    none_k = sb.load(none_src, dev.index or 0)
    build_k = sb.load(sb.compile_source(NONE_SRC, "sb_bench_table_build"), dev.index or 0)
    table_k = sb.load(sb.compile_source(NONE_SRC, "sb_bench_loop_table"), dev.index or 0)
    out = torch.zeros(2, dtype=torch.int32, device=dev)
    rng = np.random.default_rng(0)
    rows = []
    print(f"{'tasks':>6} {'tiles':>8} {'mapper':>14} {'kernel us':>10} {'ns/tile':>8} {'% GEMM step':>11} {'% tile K=4096':>13}")
    for num_tasks in (8, 64, 256, 1024, 4096):
        kernels = {"binary_search": binary, "warp_search": search}
        if num_tasks <= 1024:  # the warp scan holds 32 * slots tasks; use the fewest slots
            kernels["warp_scan"] = sb.compile_kernel(kind, sb.Mapper("warp_scan", -(-num_tasks // 32)))
        for total in (10_000, 100_000, 1_000_000):
            # Skewed counts with a quarter of the tasks empty.
            w = rng.pareto(1.2, num_tasks) + 0.01
            w[rng.random(num_tasks) < 0.25] = 0
            if w.sum() == 0:
                w[0] = 1
            counts = np.floor(w / w.sum() * total).astype(np.int64)
            counts[np.argmax(counts)] += total - counts.sum()
            p = sb.plan(counts, 1)
            offs, _, _ = p.device_arrays(dev)
            table = torch.empty(total, 2, dtype=torch.int32, device=dev)
            grid = sms
            base = time_cuda(lambda: none_k.launch(grid, 128, 0, [offs, np.int32(num_tasks), out, np.int32(-1)]))
            results = {"none": base}
            for name, k in kernels.items():
                results[name] = time_cuda(lambda k=k: k.launch(p, out, -1, grid=grid))
            results["table"] = time_cuda(
                lambda: table_k.launch(grid, 128, 0, [offs, np.int32(num_tasks), table, out, np.int32(-1)])
            )
            build = time_cuda(
                lambda: build_k.launch(max(1, (num_tasks + 127) // 128), 128, 0, [offs, np.int32(num_tasks), table])
            )
            for name, r in results.items():
                ns = max(0.0, (r["median_ms"] - base["median_ms"]) * 1e6 * grid / total)
                row = {
                    "tasks": num_tasks, "tiles": total, "mapper": name, "grid": grid,
                    **r, "ns_per_tile": ns,
                    "pct_of_gemm_step": 100 * ns / (step_us * 1e3),
                    "pct_of_tile_k4096": 100 * ns / (64 * step_us * 1e3),
                }
                if name == "table":
                    row["table_build_ms"] = build["median_ms"]
                    row["table_bytes"] = total * 8
                rows.append(row)
                extra = f"  (+ build {build['median_ms'] * 1e3:.1f} us, {total * 8 / 1e6:.1f} MB)" if name == "table" else ""
                print(f"{num_tasks:>6} {total:>8} {name:>14} {r['median_ms'] * 1e3:>10.1f} {ns:>8.1f} "
                      f"{row['pct_of_gemm_step']:>10.2f}% {row['pct_of_tile_k4096']:>12.3f}%{extra}")
    plan_rows = []
    print(f"\n{'tasks':>7} {'device_plan us':>15}")
    for num_tasks in (8, 64, 256, 1024, 4096, 65536):
        sizes = torch.randint(0, 5000, (num_tasks, 2), dtype=torch.int32, device=dev)
        r = time_cuda(lambda: sb.device_plan(sizes, (128, 256)))
        plan_rows.append({"tasks": num_tasks, **r})
        print(f"{num_tasks:>7} {r['median_ms'] * 1e3:>15.1f}")
    path = save("bench_mapper", rows, {"device_plan": plan_rows, "gemm_step_us": step_us, "sms": sms})
    print(f"\nsaved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
