"""2-CTA clusters with a multicast weight tile (``GemmConfig.cluster=2``) against the same tiles
without, on the H200 (dev check, not a test).

Part 1 checks every cluster configuration on edge counts: error against the float32 reference
(output poisoned first) and bit-identical output to the same tile without a cluster. Part 2
times the gate/up (staged gather) and down GEMMs of the five model shapes at T = 1024, 4096 and
16384: the heuristic's tile with and without a cluster, and the other normal-mode tile (128 x 256
or ping-pong 64 x 256) with one (CUDA-graph replay, L2 flushed, median of 10). The result goes to
benchmarks/results/dev_cluster_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_cluster_check.py
"""
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import compile_configs, layer_weights, save, time_cuda

import staticbatch_moe as moe
from staticbatch_moe._gemm_config import _normal_config, choose_config

TILES = {"128x256": (128, 256, False), "pp64x256": (64, 256, True), "128x128": (128, 128, False),
         "pp64x128": (64, 128, True)}
EDGE = [1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 0, 255, 256, 257, 8, 9, 47, 48, 49, 95, 96, 97]


def ids_with_counts(counts: list[int], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ids = torch.cat([torch.full((c,), e, dtype=torch.int32) for e, c in enumerate(counts)])
    return ids[torch.randperm(len(ids), generator=g)].view(-1, 1).cuda()


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got.float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-30))


def tile_config(name: str, silu: bool, cluster: int) -> moe.GemmConfig:
    bm, bn, pp = TILES[name]
    cfg = _normal_config(bm, bn, pp, "silu_and_mul" if silu else None, "bf16", silu)
    if silu:
        cfg = dataclasses.replace(cfg, gather_mode="staged")
    return dataclasses.replace(cfg, cluster=cluster)


def check() -> list[dict]:
    rows = []
    cases = {"edge": EDGE, "one": [1], "one-expert-300": [300], "odd": [129, 0, 5], "skew": [3000, 1, 1, 0, 40]}
    for name in TILES:
        for silu in (False, True):
            for k in (200, 2880):
                for case, counts in cases.items():
                    ids = ids_with_counts(counts, seed=k)
                    e = len(counts)
                    p = moe.route_plan(ids, e)
                    t = ids.shape[0]
                    g = torch.Generator(device="cuda").manual_seed(k)
                    n = 320
                    a = torch.randn(t if silu else p.num_rows, k, device="cuda", generator=g).to(torch.bfloat16)
                    w = (torch.randn(e, n, k, device="cuda", generator=g) / k**0.5).to(torch.bfloat16)
                    wt = moe.pack_gate_up(w) if silu else w
                    act = "silu_and_mul" if silu else None
                    outs = []
                    for cluster in (2, 1):
                        out = torch.full((p.num_rows, n // 2 if silu else n), float("nan"), dtype=torch.bfloat16,
                                         device="cuda")
                        moe.grouped_gemm(a, wt, p, gather=silu, activation=act, out=out,
                                         config=tile_config(name, silu, cluster))
                        outs.append(out)
                    ref = moe.grouped_gemm_reference(a, wt, p, gather=silu, activation=act)
                    torch.cuda.synchronize()
                    row = {"tile": name, "silu": silu, "k": k, "case": case,
                           "nan": bool(torch.isnan(outs[0]).any()), "err": rel_err(outs[0], ref),
                           "bitwise_equal_to_no_cluster": bool(torch.equal(outs[0], outs[1]))}
                    rows.append(row)
                    if row["nan"] or row["err"] > 1e-2 or not row["bitwise_equal_to_no_cluster"]:
                        print("FAIL", row, flush=True)
    print(f"correctness: {sum(1 for r in rows if not r['nan'] and r['err'] < 1e-2 and r['bitwise_equal_to_no_cluster'])}"
          f" of {len(rows)} cases pass", flush=True)
    return rows


POINTS = [(model, t) for model in moe.MODEL_SHAPES for t in (1024, 4096, 16384)]


def variants(model: str, t: int) -> dict[str, tuple[moe.GemmConfig, moe.GemmConfig]]:
    """(gate/up, down) configurations to time at one point; {} where the heuristic picks swap mode."""
    h, i, e, k = moe.MODEL_SHAPES[model]
    up0 = choose_config(t * k, e, 2 * i, h, "bf16", "silu_and_mul", True)
    dn0 = choose_config(t * k, e, h, i, "bf16", None, False)
    if up0.swap_ab or dn0.swap_ab:
        return {}

    def tile(c: moe.GemmConfig, bm: int, bn: int, pp: bool, cluster: int) -> moe.GemmConfig:
        return dataclasses.replace(_normal_config(bm, bn, pp, c.activation, "bf16", c.gather),
                                   gather_mode=c.gather_mode, cluster=cluster)

    out = {"chosen": (up0, dn0)}
    for name, (bm, bn, pp) in (("128x256", (128, 256, False)), ("pp64x256", (64, 256, True))):
        for cl in (1, 2):
            out[f"{name}_c{cl}"] = (tile(up0, bm, bn, pp, cl), tile(dn0, bm, bn, pp, cl))
    return out


def bench() -> list[dict]:
    rows = []
    torch.manual_seed(0)
    for model, t in POINTS:
        v = variants(model, t)
        if not v:
            continue
        h, i, e, k = moe.MODEL_SHAPES[model]
        x = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        w1, w2 = layer_weights(h, i, e)
        ids = torch.rand(t, e, device="cuda").topk(k, dim=1).indices.to(torch.int32)
        plan = moe.route_plan(ids, e)
        mid = torch.empty(plan.num_rows, i, device="cuda", dtype=torch.bfloat16)
        y = torch.empty(plan.num_rows, h, device="cuda", dtype=torch.bfloat16)
        res: dict = {"model": model, "T": t}
        for tag, (up, dn) in v.items():
            res[f"up_{tag}_config"], res[f"down_{tag}_config"] = up.kernel_name, dn.kernel_name
            res[f"up_{tag}"] = round(time_cuda(
                lambda: moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid, config=up),
                reps=10, flush_l2=True)["median_ms"], 4)
            res[f"down_{tag}"] = round(time_cuda(
                lambda: moe.grouped_gemm(mid, w2, plan, gather=False, out=y, config=dn),
                reps=10, flush_l2=True)["median_ms"], 4)
        print(res, flush=True)
        rows.append(res)
    return rows


if __name__ == "__main__":
    configs = {tile_config(nm, s, c) for nm in TILES for s in (False, True) for c in (1, 2)}
    configs |= {c for model, t in POINTS for pair in variants(model, t).values() for c in pair}
    configs = sorted(configs, key=lambda c: c.kernel_name)
    report = compile_configs(configs)
    print(report, flush=True)
    checks = check()
    timings = bench() if "--no-bench" not in sys.argv else []
    save("dev_cluster_check", timings, {"note": "ms, median of 10, L2 flushed; 'chosen' is the heuristic of the "
                                                "commit; the others are the two tiles with and without a cluster",
                                        "ptxas": report, "checks": checks})
