"""A whole MoE layer, routing through combine: staticbatch against transformers and a
``torch._grouped_mm`` layer, with and without CUDA graphs, on one GPU, one process.

Per point (model shape, T tokens, bf16, routed experts only, no shared experts):

- ours: ``staticbatch_moe.MoE`` (router GEMM, ``select_experts``, device routing plan, the two
  grouped GEMMs with SiLU-and-mul fused, float32 combine), eager and as a CUDA graph, its
  weights stored as the layer stores them by default (bf16: tiled, packed once by
  ``hf.patch``);
- our two GEMMs alone on a precomputed plan (the issue's "layer within 1.15x of the GEMMs");
- the transformers block of the model's family, eager (it syncs with the host: no graph);
- a ``torch._grouped_mm`` layer: torch softmax/top-k routing, a stable sort, counts by
  scatter-add, gathered rows, two grouped GEMMs, SiLU-and-mul and an index_add combine,
  eager and as a CUDA graph.

Run: python benchmarks/bench_moe_layer.py [--models a,b] [--ts 1,16] [--budget-s 500]
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch
from common import save, time_cuda

import staticbatch_moe as moe
from staticbatch_moe import hf

TS = (1, 16, 128, 1024, 4096, 16384)


def hf_block(model: str, h: int, i: int, e: int, k: int) -> torch.nn.Module:
    """The transformers block of the model's family with these sizes (random weights)."""
    import transformers as tf
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    if model.startswith("Mixtral"):
        return MixtralSparseMoeBlock(tf.MixtralConfig(hidden_size=h, intermediate_size=i, num_local_experts=e,
                                                      num_experts_per_tok=k))
    # Qwen3-MoE's block (softmax top-k, renormalised) stands in for the others' routed experts:
    # same GEMM shapes, the routing differences do not change the cost.
    return Qwen3MoeSparseMoeBlock(tf.Qwen3MoeConfig(hidden_size=h, moe_intermediate_size=i, num_experts=e,
                                                    num_experts_per_tok=k, norm_topk_prob=True))


def grouped_mm_layer(x: torch.Tensor, router: torch.Tensor, w1t: torch.Tensor, w2t: torch.Tensor, k: int) -> torch.Tensor:
    """A layer on torch._grouped_mm with torch routing and combine; no host sync."""
    t, h = x.shape
    e = router.shape[0]
    probs = torch.softmax((x @ router.T).float(), dim=-1)
    w, ids = torch.topk(probs, k, dim=-1)
    w = w / w.sum(-1, keepdim=True)
    flat = ids.reshape(-1)
    order = torch.sort(flat, stable=True).indices
    counts = torch.zeros(e, dtype=torch.int32, device=x.device).scatter_add_(0, flat, torch.ones_like(flat, dtype=torch.int32))
    offs = torch.cumsum(counts, 0, dtype=torch.int32)
    xg = x[order // k]
    g = torch._grouped_mm(xg, w1t, offs=offs)
    half = g.shape[1] // 2
    mid = torch.nn.functional.silu(g[:, :half]) * g[:, half:]
    y = torch._grouped_mm(mid, w2t, offs=offs)
    y = y.float() * w.reshape(-1)[order, None]
    return torch.zeros(t, h, device=x.device, dtype=torch.float32).index_add_(0, order // k, y).to(x.dtype)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(moe.MODEL_SHAPES))
    ap.add_argument("--ts", default=",".join(map(str, TS)))
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--budget-s", type=float, default=500.0)
    args = ap.parse_args()
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("bench_moe_layer needs a Hopper GPU (sm_90a); none is available here.")
        return 0
    t0 = time.time()
    rows = []
    print(f"{'model':<16}{'T':>6}{'ours graph':>11}{'ours eager':>11}{'gemms':>9}{'layer/gemms':>12}"
          f"{'hf eager':>10}{'gmm graph':>10}{'gmm eager':>10}{'x gmm(graph)':>13}{'x hf':>7}{'err':>9}")
    for model in args.models.split(","):
        h, i, e, k = moe.MODEL_SHAPES[model]
        with torch.device("cuda"):
            torch.set_default_dtype(torch.bfloat16)
            block = hf_block(model, h, i, e, k).eval()
            torch.set_default_dtype(torch.float32)
        with torch.no_grad():
            for p in block.parameters():
                p.normal_(0.0, 1.0 / math.sqrt(p.shape[-1]))
            holder = torch.nn.Sequential(block)
            hf.patch(holder)
            ours = holder[0].moe
        router = ours.router.weight.detach()
        w1_plain, w2_plain = ours.unpacked_experts()  # [gate; up], [E, H, I]
        w1t, w2t = w1_plain.transpose(1, 2), w2_plain.transpose(1, 2)
        del w1_plain, w2_plain
        packed, w2_ours = ours.expert_weights()  # as the layer stores them (tiled by default)
        for t in map(int, args.ts.split(",")):
            if time.time() - t0 > args.budget_s:
                print(f"time budget of {args.budget_s}s spent: stopping here")
                break
            x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
            with torch.no_grad():
                ref = block(x.unsqueeze(0)).squeeze(0)
                got = ours(x)
                err = float(((got.double() - ref.double()).norm() / ref.double().norm()).item())
                weights, ids = ours.route(x)
                plan = moe.route_plan(ids, e)

                def gemms() -> None:
                    mid = moe.grouped_gemm(x, packed, plan, activation="silu_and_mul")
                    moe.grouped_gemm(mid, w2_ours, plan, gather=False)

                r = {
                    "ours_graph": time_cuda(lambda: ours(x), reps=args.reps),
                    "ours_eager": time_cuda(lambda: ours(x), reps=args.reps, graph=False),
                    "gemms": time_cuda(gemms, reps=args.reps),
                    "hf_eager": time_cuda(lambda: block(x.unsqueeze(0)), reps=max(3, args.reps // 3), graph=False),
                    "gmm_graph": time_cuda(lambda: grouped_mm_layer(x, router, w1t, w2t, k), reps=args.reps),
                    "gmm_eager": time_cuda(lambda: grouped_mm_layer(x, router, w1t, w2t, k), reps=args.reps, graph=False),
                }
            m = {name: v["median_ms"] for name, v in r.items()}
            row = {"model": model, "T": t, "H": h, "I": i, "E": e, "k": k, "rel_err_vs_hf": err, **r,
                   "layer_over_gemms": m["ours_graph"] / m["gemms"],
                   "speedup_vs_grouped_mm_graph": m["gmm_graph"] / m["ours_graph"],
                   "speedup_vs_hf_eager": m["hf_eager"] / m["ours_graph"]}
            rows.append(row)
            print(f"{model:<16}{t:>6}{m['ours_graph']:>11.3f}{m['ours_eager']:>11.3f}{m['gemms']:>9.3f}"
                  f"{row['layer_over_gemms']:>12.2f}{m['hf_eager']:>10.3f}{m['gmm_graph']:>10.3f}{m['gmm_eager']:>10.3f}"
                  f"{row['speedup_vs_grouped_mm_graph']:>13.2f}{row['speedup_vs_hf_eager']:>7.1f}{err:>9.1e}", flush=True)
        block = holder = ours = w1t = w2t = None  # free before the next model
        torch.cuda.empty_cache()
    summary = {}
    if rows:
        sp = [r["speedup_vs_grouped_mm_graph"] for r in rows]
        summary["geomean_speedup_vs_grouped_mm_graph"] = math.exp(sum(map(math.log, sp)) / len(sp))
        summary["min_speedup_vs_grouped_mm_graph"] = min(sp)
        big = [r["layer_over_gemms"] for r in rows if r["T"] >= 1024]
        if big:
            summary["max_layer_over_gemms_t_ge_1024"] = max(big)
    print("summary:", summary)
    path = save("bench_moe_layer", rows, {"summary": summary})
    print(f"saved {path} in {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
