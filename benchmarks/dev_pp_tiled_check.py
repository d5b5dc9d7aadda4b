"""64-row ping-pong tiles on tiled weights against the same tiles on plain weights (dev check on
the H200, not a test).

dev_tiled_tall_ab.json measured GPT-OSS-120B at T = 6144 (about 192 rows per expert, the heuristic's
64 x 192 ping-pong tiles) 32 % slower on tiled weights than on plain ones (3.28 against 2.48 ms,
both GEMMs), and dev_tiled_rule_check.json Qwen3-235B-A22B's down GEMM at T = 4096 (64 x 256
ping-pong) 10 % slower. Here each GEMM alone, every expert on one configuration, on plain and on
tiled weights, three interleaved repeats of a median of 10 replays, L2 read-flushed, outputs
compared bit for bit with the first configuration on plain weights.

Run::

    PYTHONPATH=. python benchmarks/dev_pp_tiled_check.py [--points Model:T:routing,...]
"""
import argparse
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import compile_configs, layer_point, parse_points, save, time_interleaved

import staticbatch_moe as moe
from staticbatch_moe._gemm_config import _normal_config

POINTS = [("GPT-OSS-120B", 6144, "uniform"), ("Qwen3-235B-A22B", 4096, "uniform"), ("DeepSeek-V3", 4096, "uniform")]
# (block_m, block_n, pingpong, cluster)
CANDIDATES = [(64, 192, True, 1), (64, 256, True, 1), (64, 128, True, 1), (128, 192, True, 2)]


def candidate(bm: int, bn: int, pp: bool, cluster: int, up: bool, tiled: bool) -> moe.GemmConfig:
    cfg = _normal_config(bm, bn, pp, "silu_and_mul" if up else None, "bf16", up)
    if up:
        cfg = dataclasses.replace(cfg, gather_mode="staged")
    return dataclasses.replace(cfg, cluster=cluster, tiled_w=tiled)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", default="")
    args = ap.parse_args()
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print("dev_pp_tiled_check needs a Hopper GPU")
        return 0
    points = parse_points(args.points, POINTS)
    print(compile_configs(sorted({candidate(*c, up, tw) for c in CANDIDATES for up in (False, True)
                                  for tw in (False, True)}, key=lambda c: c.kernel_name)), flush=True)
    rows = []
    for model, t, kind in points:
        w1p, w2, x, plan = layer_point(model, t, kind)
        tiled = (moe.GateUpWeight(moe.pack_weight(w1p.packed)), moe.pack_weight(w2))
        h, i, _, _ = moe.MODEL_SHAPES[model]
        mid = torch.randn(plan.num_rows, i, device="cuda", dtype=torch.bfloat16)
        valid = int(plan.expert_starts[-1])
        for gemm in ("up", "down"):
            up = gemm == "up"
            calls, outs = {}, {}
            for c in CANDIDATES:
                for tw, (a1, a2) in ((False, (w1p, w2)), (True, tiled)):
                    cfg = candidate(*c, up, tw)
                    out = torch.full((plan.num_rows, i if up else h), float("nan"), device="cuda",
                                     dtype=torch.bfloat16)

                    def fn(out=out, a1=a1, a2=a2, cfg=cfg, up=up, x=x, plan=plan, mid=mid) -> None:  # type: ignore[no-untyped-def]
                        if up:
                            moe.grouped_gemm(x, a1, plan, activation="silu_and_mul", out=out, config=cfg)
                        else:
                            moe.grouped_gemm(mid, a2, plan, gather=False, out=out, config=cfg)

                    fn()
                    torch.cuda.synchronize()
                    name = cfg.kernel_name.replace("sb_grouped_gemm_bf16_", "")
                    calls[name], outs[name] = fn, out
            first = next(iter(outs.values()))[:valid]
            same = {n: bool(torch.equal(o[:valid], first)) for n, o in outs.items()}
            ms = time_interleaved(calls, repeats=3, reps=10)
            med = {n: sorted(v)[1] for n, v in ms.items()}
            tiled_over_plain = {n: round(med[n] / med[n[:-3]], 4) for n in med if n.endswith("_wt")}
            rows.append({"model": model, "T": t, "routing": kind, "gemm": gemm, "bit_identical": same,
                         "nan_free": not bool(first.isnan().any()), "ms": ms, "median_ms": med,
                         "tiled_over_plain": tiled_over_plain})
            print(f"{model} T={t} {kind} {gemm}: " + " ".join(f"{n} {v:.4f}" for n, v in med.items())
                  + f" | tiled/plain {tiled_over_plain} all same {all(same.values())}", flush=True)
        del w1p, w2, x, plan, tiled, mid
        torch.cuda.empty_cache()
    save("dev_pp_tiled_check", rows, {"note": "each GEMM alone, one configuration for every expert, plain and "
                                      "tiled weights; ms, three interleaved repeats"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
