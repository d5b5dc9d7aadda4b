"""How much of the T = 1 gap to a plain weight read comes from how the tiles split the bytes
(dev check on the H200, not a test).

dev_decode_floor_check.json: a kernel that only reads the T = 1 weights once, in equal shares
over all SMs, takes 21.6 us at Qwen3-30B-A3B (ours: 29.4 us for both GEMMs). This reads the same
bytes the way the heuristic's tiles split them, and nothing else: each tile's weight rows
(``block_n`` rows x K, contiguous in [E, N, K]) in chunks of one ring stage (``block_n`` x 128
bytes, 12 slots), tile i by block i mod 132, as the persistent kernel does.

- ``tiles_two`` / ``tiles_two_pdl``: two launches, the gate/up tiles then the down tiles; the
  second plain, or a programmatic dependent that fills its ring before ``griddepcontrol.wait``
  (as the layer's down GEMM does).
- ``tiles_one``: one launch over the gate/up tiles and then the down tiles (the one-launch MLP's
  tile order), no waiting.
- ``even_two_pdl``: two launches, each reading its bytes in equal shares over all SMs.
- ``even_one_rr``: one launch, 8 KB chunks dealt round robin over 4 blocks per SM (the fastest
  reader of dev_decode_floor_check at every model).
- ``ours``: both GEMMs as bench_grouped_gemm calls them.
- ``ours_up`` / ``tiles_up`` and ``ours_down`` / ``tiles_down``: each GEMM alone against its tiles
  read alone (one launch each; ``--alone``, a second run).

Timing as bench_grouped_gemm (CUDA graph, L2 read-flushed), five interleaved repeats.
Result: benchmarks/results/dev_decode_tiles_read_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_decode_tiles_read_check.py [--alone]
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import MEMORY_CEILING_TBPS, layer_classes, layer_point, save, time_interleaved
from dev_decode_floor_check import SOURCE as READ_SOURCE
from dev_decode_floor_check import segments

import staticbatch as sb
import staticbatch_moe as moe

SOURCE = READ_SOURCE + r"""
// Tile i of the (address, bytes) list by block i mod grid, each in `chunk`-byte bulk copies
// through a ring of `stages` slots. mode 1: trigger dependents at once; mode 2: wait for the
// kernel before after `pre` chunks.
extern "C" __global__ void __launch_bounds__(32) read_tiles(const long long* tiles, int ntiles, int stages,
                                                            int mode, int pre, int chunk) {
  extern __shared__ __align__(1024) unsigned char ring[];
  __shared__ uint64_t bars[32];
  if (threadIdx.x != 0) return;
  if (mode == 1) griddep_launch_dependents();
  for (int s = 0; s < stages; ++s) mbarrier_init(&bars[s], 1);
  fence_barrier_init();
  int issued = 0;
  bool waited = mode != 2;
  for (int tile = blockIdx.x; tile < ntiles; tile += gridDim.x) {
    const char* base = (const char*)tiles[2 * tile];
    const long long n = tiles[2 * tile + 1];
    for (long long pos = 0; pos < n; pos += chunk) {
      if (!waited && issued == pre) { griddep_wait(); waited = true; }
      int slot = issued % stages;
      if (issued >= stages) mbarrier_wait(&bars[slot], ((issued / stages) - 1) & 1);
      uint32_t bytes = (uint32_t)((n - pos) < chunk ? (n - pos) : chunk);
      mbarrier_arrive_expect_tx(&bars[slot], bytes);
      asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n"
                   :: "r"(smem_addr(ring + slot * chunk)), "l"(base + pos), "r"(bytes), "r"(smem_addr(&bars[slot]))
                   : "memory");
      ++issued;
    }
  }
  for (int i = issued > stages ? issued - stages : 0; i < issued; ++i)
    mbarrier_wait(&bars[i % stages], (i / stages) & 1);
  if (!waited) griddep_wait();
}
"""


def tiles_of(w: torch.Tensor, experts: list[int], rows: int) -> list[tuple[int, int]]:
    """(address, bytes) of every ``rows``-row weight tile of the experts, expert by expert."""
    _, n, k = w.shape
    out = []
    for e in experts:
        for r0 in range(0, n, rows):
            r = min(rows, n - r0)
            out.append((w[e, r0].data_ptr(), r * k * w.element_size()))
    return out


def main() -> int:
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("dev_decode_tiles_read_check needs a Hopper GPU")
        return 0
    sms = sb.device_properties(0).num_sms
    read = sb.load(sb.compile_source(SOURCE, "read_weights"), 0)
    read_rr = sb.load(sb.compile_source(SOURCE, "read_weights_rr"), 0)
    read_tiles = sb.load(sb.compile_source(SOURCE, "read_tiles"), 0)
    alone = "--alone" in sys.argv[1:]
    rows = []
    for model in ("Qwen3-30B-A3B", "GPT-OSS-120B", "Qwen3-235B-A22B", "Mixtral-8x7B", "DeepSeek-V3"):
        w1p, w2, x, plan = layer_point(model, 1, "uniform")
        w1 = w1p.packed
        h, i, _, _ = moe.MODEL_SHAPES[model]
        counts = torch.diff(plan.expert_starts).tolist()
        active = [e for e, c in enumerate(counts) if c > 0]
        classes = layer_classes(model, 1)
        bn_up, bn_down = classes["up"][0].config.block_n, classes["down"][0].config.block_n
        t_up = tiles_of(w1, active, bn_up)
        t_down = tiles_of(w2, active, bn_down)
        up_tiles = torch.tensor(t_up, dtype=torch.int64, device="cuda").flatten()
        down_tiles = torch.tensor(t_down, dtype=torch.int64, device="cuda").flatten()
        all_tiles = torch.cat([up_tiles, down_tiles])
        up_segs, up_bytes = segments([w1[e] for e in active])
        down_segs, down_bytes = segments([w2[e] for e in active])
        all_segs, all_bytes = segments([w1[e] for e in active] + [w2[e] for e in active])
        m = plan.num_rows
        floor_ms = (all_bytes + (h + 2 * m * i + m * h) * 2) / (MEMORY_CEILING_TBPS * 1e12) * 1e3

        def tiles_launch(tl, chunk, mode=0, prog=False):  # type: ignore[no-untyped-def]
            return lambda: read_tiles.launch(sms, 32, 12 * chunk, [tl, np.int32(tl.numel() // 2), np.int32(12),
                                                                  np.int32(mode), np.int32(12), np.int32(chunk)],
                                             programmatic=prog)

        def even_launch(segs, nbytes, mode=0, prog=False):  # type: ignore[no-untyped-def]
            share = -(-nbytes // sms // 16) * 16
            return lambda: read.launch(sms, 32, 12 * 16384, [segs, np.int32(segs.numel() // 2), np.int64(share),
                                                            np.int32(12), np.int32(mode), np.int32(12),
                                                            np.int32(16384)], programmatic=prog)

        c_up, c_down = bn_up * 128, bn_down * 128
        up1, down1 = tiles_launch(up_tiles, c_up, mode=1), tiles_launch(down_tiles, c_down)
        down1_pdl = tiles_launch(down_tiles, c_down, mode=2, prog=True)
        eu, ed = even_launch(up_segs, up_bytes, mode=1), even_launch(down_segs, down_bytes, mode=2, prog=True)
        rr = lambda: read_rr.launch(4 * sms, 32, 6 * 8192, [all_segs, np.int32(all_segs.numel() // 2),  # noqa: E731
                                                           np.int64(all_bytes), np.int32(6), np.int32(8192)])
        mid = torch.empty(m, i, dtype=torch.bfloat16, device="cuda")
        y = torch.empty(m, h, dtype=torch.bfloat16, device="cuda")

        def ours() -> None:
            moe.grouped_gemm(x, w1p, plan, activation="silu_and_mul", out=mid)
            moe.grouped_gemm(mid, w2, plan, gather=False, out=y, programmatic_launch=True)

        def ours_up() -> None:
            moe.grouped_gemm(x, w1p, plan, activation="silu_and_mul", out=mid)

        def ours_down() -> None:
            moe.grouped_gemm(mid, w2, plan, gather=False, out=y)

        if alone:
            calls = {"ours_up": ours_up, "tiles_up": tiles_launch(up_tiles, c_up),
                     "ours_down": ours_down, "tiles_down": down1}
            ms = time_interleaved(calls, repeats=5, reps=20)
            row = {"model": model, "T": 1, "us": {n: [round(v * 1e3, 2) for v in vals] for n, vals in ms.items()}}
            row["median_us"] = {n: float(np.median(v)) for n, v in row["us"].items()}
            rows.append(row)
            print(model, ", ".join(f"{n} {v:.1f}" for n, v in row["median_us"].items()), flush=True)
            continue
        calls = {
            "ours": ours,
            "tiles_two": lambda: (up1(), down1()),
            "tiles_two_pdl": lambda: (up1(), down1_pdl()),
            "tiles_one": tiles_launch(all_tiles, min(c_up, c_down)),
            "even_two_pdl": lambda: (eu(), ed()),
            "even_one_rr": rr,
        }
        ms = time_interleaved(calls, repeats=5, reps=20)
        row = {"model": model, "T": 1, "weight_bytes": all_bytes, "floor_us": floor_ms * 1e3,
               "tiles": {"up": [len(t_up), t_up[0][1]], "down": [len(t_down), t_down[0][1]]},
               "us": {n: [round(v * 1e3, 2) for v in vals] for n, vals in ms.items()}}
        row["median_us"] = {n: float(np.median(v)) for n, v in row["us"].items()}
        rows.append(row)
        print(model, f"floor {floor_ms * 1e3:.1f} us, up {len(t_up)} x {t_up[0][1] // 1024} KB, down {len(t_down)} x "
              f"{t_down[0][1] // 1024} KB:", ", ".join(f"{n} {v:.1f}" for n, v in row["median_us"].items()), flush=True)
    save("dev_decode_tiles_read_check_alone" if alone else "dev_decode_tiles_read_check", rows, {"note": "T = 1, uniform routing, us; reads only, split as the "
                                               "heuristic's tiles or evenly; timing as bench_grouped_gemm"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
