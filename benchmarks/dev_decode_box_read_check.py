"""Is the GEMM's weight stream at decode slower because of how it reads (tensor-map boxes) or
because of what it does between reads? (dev check on the H200, not a test)

dev_decode_gather_check.json: the gate/up GEMM at T = 1 and 16 takes 6-11 % longer than reading
its weight tiles alone in 1-D bulk copies, whatever its gather. This reads the same tiles the way
the GEMM does, with nothing else: the kernel's own weight tensor map (box 64 columns x block_n
rows, 128-byte swizzle), k-block by k-block, through a ring of 12 stages, tile i by block i mod
132 (``boxes``), beside the 1-D reader (``tiles``) and the GEMM (``gemm``). Timing as
bench_grouped_gemm, five interleaved repeats.
Result: benchmarks/results/dev_decode_box_read_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_decode_box_read_check.py
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import layer_classes, layer_point, save, time_interleaved
from dev_decode_tiles_read_check import SOURCE, tiles_of

import staticbatch as sb
import staticbatch_moe as moe
from staticbatch_moe import _gemm_config as cfgmod

BOX_SOURCE = SOURCE + r"""
// Tile i = (expert, first row) by block i mod grid: k-blocks 0..kbs-1 of the box {64, rows}
// through a ring of `stages` slots of `box_bytes`, as the GEMM's producer loads its weight.
extern "C" __global__ void __launch_bounds__(32) read_boxes(const __grid_constant__ TmaDescriptor w_map,
    const int* tiles, int ntiles, int kbs, int stages, int box_bytes) {
  extern __shared__ __align__(1024) unsigned char ring[];
  __shared__ uint64_t bars[32];
  if (threadIdx.x != 0) return;
  for (int s = 0; s < stages; ++s) mbarrier_init(&bars[s], 1);
  fence_barrier_init();
  int issued = 0;
  for (int tile = blockIdx.x; tile < ntiles; tile += gridDim.x) {
    const int e = tiles[2 * tile], row0 = tiles[2 * tile + 1];
    for (int kb = 0; kb < kbs; ++kb) {
      int slot = issued % stages;
      if (issued >= stages) mbarrier_wait(&bars[slot], ((issued / stages) - 1) & 1);
      mbarrier_arrive_expect_tx(&bars[slot], box_bytes);
      tma_load_3d(smem_addr(ring + slot * box_bytes), &w_map, &bars[slot], kb * 64, row0, e);
      ++issued;
    }
  }
  for (int i = issued > stages ? issued - stages : 0; i < issued; ++i)
    mbarrier_wait(&bars[i % stages], (i / stages) & 1);
}
"""


def main() -> int:
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("dev_decode_box_read_check needs a Hopper GPU")
        return 0
    sms = sb.device_properties(0).num_sms
    read_tiles = sb.load(sb.compile_source(BOX_SOURCE, "read_tiles"), 0)
    read_boxes = sb.load(sb.compile_source(BOX_SOURCE, "read_boxes"), 0)
    rows = []
    for t in (1, 16):
        for model in ("Qwen3-30B-A3B", "GPT-OSS-120B", "Qwen3-235B-A22B", "Mixtral-8x7B", "DeepSeek-V3"):
            w1p, _, x, plan = layer_point(model, t, "uniform")
            h, i, _, _ = moe.MODEL_SHAPES[model]
            cfg = layer_classes(model, t)["up"][0].config
            counts = torch.diff(plan.expert_starts).tolist()
            active = [e for e, c in enumerate(counts) if c > 0]
            bn = cfg.block_n
            tl = torch.tensor(tiles_of(w1p.packed, active, bn), dtype=torch.int64, device="cuda").flatten()
            boxes = torch.tensor([(e, r0) for e in active for r0 in range(0, 2 * i, bn)], dtype=torch.int32,
                                 device="cuda").flatten()
            w_map = sb.ByValue(cfgmod.weight_tma_descriptor(w1p.packed, cfg), align=64)
            chunk = bn * 128
            kbs = -(-h // 64)
            out = torch.empty(plan.num_rows, i, device="cuda", dtype=torch.bfloat16)
            calls = {
                "gemm": lambda x=x, w1p=w1p, plan=plan, out=out: moe.grouped_gemm(
                    x, w1p, plan, activation="silu_and_mul", out=out),
                "tiles": lambda tl=tl, chunk=chunk: read_tiles.launch(
                    sms, 32, 12 * chunk, [tl, np.int32(tl.numel() // 2), np.int32(12), np.int32(0), np.int32(12),
                                          np.int32(chunk)]),
                "boxes": lambda b=boxes, w_map=w_map, kbs=kbs, chunk=chunk: read_boxes.launch(
                    sms, 32, 12 * chunk, [w_map, b, np.int32(b.numel() // 2), np.int32(kbs), np.int32(12),
                                          np.int32(chunk)]),
            }
            ms = time_interleaved(calls, repeats=5, reps=20)
            row = {"model": model, "T": t, "config": cfg.kernel_name,
                   "us": {n: [round(v * 1e3, 2) for v in vals] for n, vals in ms.items()}}
            row["median_us"] = {n: float(np.median(v)) for n, v in row["us"].items()}
            rows.append(row)
            print(model, t, cfg.kernel_name, ", ".join(f"{n} {v:.1f}" for n, v in row["median_us"].items()), flush=True)
            del w1p, x, plan, calls
            torch.cuda.empty_cache()
    save("dev_decode_box_read_check", rows, {"note": "gate/up weights at T = 1 and 16, us: the GEMM, its tiles read "
                                             "in 1-D bulk copies, and read by its own tensor-map boxes"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
