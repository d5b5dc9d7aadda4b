"""The fastest any kernel could be at the T = 1 points under the benchmark's timing (dev check on
the H200, not a test).

At T = 1 the two GEMMs of a layer only have to read the active experts' weights once. This times,
with bench_grouped_gemm's method (CUDA graph replay between CUDA events, L2 read-flushed between
replays), kernels that do nothing but read exactly those bytes: no plan, no compute, no output.

- ``empty``: one empty kernel (what a graph launch costs before any byte moves).
- ``read_one_cC_sS_bB``: one launch of B blocks per SM reads all the bytes (gate/up and down
  weights), each block an equal contiguous share in C KB bulk copies (``cp.async.bulk``) through a
  ring of S slots; ``read_one_rr_*`` deals the chunks round robin over the blocks instead.
- ``read_two_sS``: two launches (16 KB chunks, S slots), the gate/up weights then the down weights,
  the second plain.
- ``read_two_pdl``: the same, the second a programmatic dependent that fills its ring before
  ``griddepcontrol.wait`` (what a down GEMM may do before the gate/up GEMM has finished).
- ``ours``: the library's two GEMMs as the benchmark calls them, on the benchmark's routing.

Every variant is timed in turns (interleaved repeats). The 0.70 floor of the benchmark at a point
needs the layer within floor_ms / 0.70. If even ``read_one`` cannot get there, no kernel can.
Result: benchmarks/results/dev_decode_floor_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_decode_floor_check.py
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import MEMORY_CEILING_TBPS, layer_point, save, time_interleaved

import staticbatch as sb
import staticbatch_moe as moe

#: (bytes per bulk copy, ring slots, blocks per SM) of the one-launch readers.
READERS = ((16384, 12, 1), (16384, 8, 1), (32768, 6, 1), (65536, 3, 1), (8192, 24, 1), (4096, 32, 1),
           (16384, 6, 2), (8192, 12, 2), (8192, 6, 4))
SOURCE = r"""
#include <staticbatch/ptx.cuh>
using namespace staticbatch::ptx;

// Reads bytes [b * share, (b + 1) * share) of the concatenation of `nseg` segments (device
// array of (address, bytes) pairs) into a ring of `stages` slots of `chunk` bytes; computes nothing.
// mode 1: trigger dependents at once; mode 2: wait for the kernel before after `pre` chunks.
extern "C" __global__ void __launch_bounds__(32) read_weights(const long long* segs, int nseg,
    long long share, int stages, int mode, int pre, int chunk) {
  extern __shared__ __align__(1024) unsigned char ring[];
  __shared__ uint64_t bars[32];
  if (threadIdx.x != 0) return;
  if (mode == 1) griddep_launch_dependents();
  for (int s = 0; s < stages; ++s) mbarrier_init(&bars[s], 1);
  fence_barrier_init();
  long long begin = (long long)blockIdx.x * share, end = begin + share;
  int seg = 0;
  long long base = 0;
  while (seg < nseg && base + segs[2 * seg + 1] <= begin) { base += segs[2 * seg + 1]; ++seg; }
  long long pos = begin;
  int issued = 0;
  bool waited = mode != 2;
  while (seg < nseg && pos < end) {
    long long seg_end = base + segs[2 * seg + 1];
    long long stop = seg_end < end ? seg_end : end;
    while (pos < stop) {
      if (!waited && issued == pre) { griddep_wait(); waited = true; }
      int slot = issued % stages;
      if (issued >= stages) mbarrier_wait(&bars[slot], ((issued / stages) - 1) & 1);
      uint32_t bytes = (uint32_t)((stop - pos) < chunk ? (stop - pos) : chunk);
      mbarrier_arrive_expect_tx(&bars[slot], bytes);
      const char* src = (const char*)segs[2 * seg] + (pos - base);
      asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n"
                   :: "r"(smem_addr(ring + slot * chunk)), "l"(src), "r"(bytes), "r"(smem_addr(&bars[slot]))
                   : "memory");
      pos += bytes;
      ++issued;
    }
    base = seg_end;
    ++seg;
  }
  for (int i = issued > stages ? issued - stages : 0; i < issued; ++i)
    mbarrier_wait(&bars[i % stages], (i / stages) & 1);
  if (!waited) griddep_wait();
}

// The same with chunks dealt round robin: block b reads chunks b, b + grid, ... of the
// concatenation (every segment a whole number of chunks).
extern "C" __global__ void __launch_bounds__(32) read_weights_rr(const long long* segs, int nseg,
    long long total, int stages, int chunk) {
  extern __shared__ __align__(1024) unsigned char ring[];
  __shared__ uint64_t bars[32];
  if (threadIdx.x != 0) return;
  for (int s = 0; s < stages; ++s) mbarrier_init(&bars[s], 1);
  fence_barrier_init();
  int issued = 0;
  int seg = 0;
  long long base = 0;
  for (long long pos = (long long)blockIdx.x * chunk; pos < total; pos += (long long)gridDim.x * chunk) {
    while (base + segs[2 * seg + 1] <= pos) { base += segs[2 * seg + 1]; ++seg; }
    int slot = issued % stages;
    if (issued >= stages) mbarrier_wait(&bars[slot], ((issued / stages) - 1) & 1);
    mbarrier_arrive_expect_tx(&bars[slot], chunk);
    const char* src = (const char*)segs[2 * seg] + (pos - base);
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n"
                 :: "r"(smem_addr(ring + slot * chunk)), "l"(src), "r"(chunk), "r"(smem_addr(&bars[slot]))
                 : "memory");
    ++issued;
  }
  for (int i = issued > stages ? issued - stages : 0; i < issued; ++i)
    mbarrier_wait(&bars[i % stages], (i / stages) & 1);
}

extern "C" __global__ void empty_kernel(int) {}
"""


def segments(tensors: list[torch.Tensor]) -> tuple[torch.Tensor, int]:
    pairs = [(t.data_ptr(), t.numel() * t.element_size()) for t in tensors]
    total = sum(n for _, n in pairs)
    return torch.tensor(pairs, dtype=torch.int64, device="cuda").flatten(), total


def main() -> int:
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("dev_decode_floor_check needs a Hopper GPU")
        return 0
    sms = sb.device_properties(0).num_sms
    read = sb.load(sb.compile_source(SOURCE, "read_weights"), 0)
    read_rr = sb.load(sb.compile_source(SOURCE, "read_weights_rr"), 0)
    empty = sb.load(sb.compile_source(SOURCE, "empty_kernel"), 0)
    rows = []
    for model in ("Qwen3-30B-A3B", "GPT-OSS-120B", "Qwen3-235B-A22B", "Mixtral-8x7B", "DeepSeek-V3"):
        w1p, w2, x, plan = layer_point(model, 1, "uniform")  # w1p: a GateUpWeight
        w1 = w1p.packed
        counts = torch.diff(plan.expert_starts).tolist()
        active = [e for e, c in enumerate(counts) if c > 0]
        up_segs, up_bytes = segments([w1[e] for e in active])
        down_segs, down_bytes = segments([w2[e] for e in active])
        all_segs, all_bytes = segments([w1[e] for e in active] + [w2[e] for e in active])
        h, i, _, _ = moe.MODEL_SHAPES[model]
        m = plan.num_rows  # bench_grouped_gemm's bytes: weights, x, mid written and read, out
        floor_ms = (all_bytes + (h + 2 * m * i + m * h) * 2) / (MEMORY_CEILING_TBPS * 1e12) * 1e3

        def launcher(segs: torch.Tensor, nbytes: int, stages: int, mode: int = 0, pre: int = 0, prog: bool = False,
                     chunk: int = 16384, per_sm: int = 1):
            grid = sms * per_sm
            share = -(-nbytes // grid // 16) * 16
            return lambda: read.launch(grid, 32, stages * chunk, [segs, np.int32(segs.numel() // 2), np.int64(share),
                                                                 np.int32(stages), np.int32(mode), np.int32(pre),
                                                                 np.int32(chunk)], programmatic=prog)

        def launcher_rr(segs: torch.Tensor, nbytes: int, stages: int, chunk: int, per_sm: int):
            return lambda: read_rr.launch(sms * per_sm, 32, stages * chunk, [segs, np.int32(segs.numel() // 2),
                                                                           np.int64(nbytes), np.int32(stages),
                                                                           np.int32(chunk)])

        out = torch.empty(plan.num_rows, h, dtype=torch.bfloat16, device="cuda")

        def ours() -> None:
            moe.grouped_mlp(x, w1p, w2, plan, out=out, config=False)

        calls = {"empty": lambda: empty.launch(1, 32, 0, [np.int32(0)]), "ours": ours}
        for chunk, stages, per_sm in READERS:
            tag = f"c{chunk // 1024}k_s{stages}_b{per_sm}"
            calls[f"read_one_{tag}"] = launcher(all_segs, all_bytes, stages, chunk=chunk, per_sm=per_sm)
            if all(n % chunk == 0 for n in all_segs[1::2].tolist()):
                calls[f"read_one_rr_{tag}"] = launcher_rr(all_segs, all_bytes, stages, chunk, per_sm)
        for stages in (8, 12):
            up, down = launcher(up_segs, up_bytes, stages, mode=1), launcher(down_segs, down_bytes, stages)
            down_pdl = launcher(down_segs, down_bytes, stages, mode=2, pre=stages, prog=True)
            calls[f"read_two_s{stages}"] = lambda up=up, down=down: (up(), down())
            calls[f"read_two_pdl_s{stages}"] = lambda up=up, down=down_pdl: (up(), down())
        ms = time_interleaved(calls, repeats=5, reps=20)
        row = {"model": model, "T": 1, "active_experts": len(active), "weight_bytes": all_bytes,
               "floor_us": floor_ms * 1e3, "floor_070_us": floor_ms * 1e3 / 0.7, "us": {n: [round(v * 1e3, 2) for v in vals] for n, vals in ms.items()}}
        row["median_us"] = {n: float(np.median(v)) for n, v in row["us"].items()}
        rows.append(row)
        print(model, f"weights {all_bytes / 1e6:.1f} MB, floor {floor_ms * 1e3:.1f} us (0.70: {floor_ms * 1e3 / 0.7:.1f}),",
              ", ".join(f"{n} {v:.1f}" for n, v in row["median_us"].items()), flush=True)
    save("dev_decode_floor_check", rows, {"note": "T = 1, uniform routing, us; read_* read only the active experts' "
                                          "weights (no compute); timing as bench_grouped_gemm (graph, read flush)"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
