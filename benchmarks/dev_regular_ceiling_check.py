"""What cuBLAS reaches on the same GEMMs without irregularity, against our tiles (dev check on
the H200, not a test).

The balanced T = 4096 points (Qwen3-30B-A3B 0.59, Qwen3-235B-A22B 0.66 of the roofline) and
Mixtral-8x7B T = 1024 (0.74) have ~128-256 rows per expert, so each expert's weight is used by
few rows and the GEMM needs DRAM and tensor cores near their peaks at once. Is that reachable at
all? Here every expert gets exactly ``T * k / E`` rows (exact routing) on pre-grouped rows
(``gather=False``, no activation), and each GEMM of the layer (``up``: N = 2I, K = H; ``down``:
N = H, K = I) is timed with

- ``ours``: the heuristic's tiles; ``ours_pp192c2``: 128 x 192 ping-pong tiles in 2-CTA clusters
  where the heuristic gives 64-row ping-pong tiles;
- ``bmm``: ``torch.bmm`` over ``[E, rows, K] x [E, K, N]`` (cuBLAS batched GEMM, the weights as the
  transposed ``[E, N, K]`` view, as nn.Linear stores them);
- ``grouped_mm``: ``torch._grouped_mm`` on the same rows and view.

Mixtral-8x7B T = 16384 (uniform routing, where ``_grouped_mm`` is level with us) also times the
down GEMM (K = 14336) with other 128-row tiles. Five interleaved repeats of a median of 10
replays, L2 read-flushed; outputs compared with bmm by relative error. Result:
benchmarks/results/dev_regular_ceiling_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_regular_ceiling_check.py
"""
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import COMPUTE_CEILING_TFLOPS, MEMORY_CEILING_TBPS, layer_plan, save, time_interleaved

PTS = [("Qwen3-30B-A3B", 4096, "exact"), ("Qwen3-235B-A22B", 4096, "exact"), ("Mixtral-8x7B", 1024, "exact"),
       ("DeepSeek-V3", 4096, "exact"), ("GPT-OSS-120B", 4096, "exact"), ("Mixtral-8x7B", 16384, "uniform")]


def main() -> None:
    import staticbatch as sb
    import staticbatch_moe as moe
    from staticbatch_moe._gemm_config import _normal_config, choose_config, kernel_source, with_store_warps

    def pp192c2(c):  # type: ignore[no-untyped-def]
        return dataclasses.replace(_normal_config(128, min(c.block_n, 192), True, None, "bf16", False), cluster=2)

    jobs = []
    for model, t, rt in PTS:
        h, i, e, k = moe.MODEL_SHAPES[model]
        for gemm, (n, kk) in (("up", (2 * i, h)), ("down", (h, i))):
            heur = choose_config(t * k, e, n, kk, "bf16", None, False)
            cfgs = {"ours": None}
            if not heur.swap_ab and heur.pingpong and heur.block_m == 64:
                cfgs["ours_pp192c2"] = pp192c2(heur)
            if model == "Mixtral-8x7B" and t == 16384 and gemm == "down":
                coop = dataclasses.replace(_normal_config(128, 256, False, None, "bf16", False), cluster=2)
                cfgs.update(coop_sw=with_store_warps(coop), coop_dynamic=dataclasses.replace(coop, dynamic=True),
                            pp192c2=pp192c2(coop),
                            pp128c2=dataclasses.replace(_normal_config(128, 128, True, None, "bf16", False),
                                                        cluster=2))
            jobs.append((model, t, rt, gemm, n, kk, cfgs))
    explicit = {c for *_, cfgs in jobs for c in cfgs.values() if c is not None}
    sb.compile_many([(kernel_source(c), c.kernel_name) for c in explicit])

    rows = [run_job(*job) for job in jobs]
    save("dev_regular_ceiling_check", rows, {"note": "ms per GEMM, exact routing unless noted, pre-grouped rows, "
                                                     "no activation; efficiency against this GEMM's own roofline"})


def run_job(model, t, rt, gemm, n, kk, cfgs) -> dict:  # type: ignore[no-untyped-def]
    """One GEMM of one point: every call of ``cfgs`` and the peers, checked and timed."""
    import torch

    import staticbatch_moe as moe
    from staticbatch_moe._gemm_config import choose_config

    h, i, e, k = moe.MODEL_SHAPES[model]
    torch.manual_seed(0)
    plan = layer_plan(model, t, rt)
    m = t * k
    a = torch.randn(m, kk, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(e, n, kk, device="cuda", dtype=torch.bfloat16) / kk**0.5
    wt = w.transpose(1, 2)
    offs = plan.expert_starts[1:].to(torch.int32)
    counts = plan.expert_counts.tolist()
    calls, outs = {}, {}
    for name, cfg in cfgs.items():
        out = torch.full((m, n), float("nan"), device="cuda", dtype=torch.bfloat16)
        outs[name] = out

        def fn(out=out, cfg=cfg) -> None:  # type: ignore[no-untyped-def]
            moe.grouped_gemm(a, w, plan, gather=False, out=out, config=cfg)
        calls[name] = fn
    if rt == "exact":
        ab = a.view(e, m // e, kk)
        outs["bmm"] = torch.full((e, m // e, n), float("nan"), device="cuda", dtype=torch.bfloat16)
        calls["bmm"] = lambda: torch.bmm(ab, wt, out=outs["bmm"])
    calls["grouped_mm"] = lambda: outs.__setitem__("grouped_mm", torch._grouped_mm(a, wt, offs=offs))
    for fn in calls.values():
        fn()
    torch.cuda.synchronize()
    ref = outs["grouped_mm"].float()
    info = {"model": model, "T": t, "routing": rt, "gemm": gemm, "N": n, "K": kk, "rows": m,
            "max_rows": max(counts), "kernels": {nm: (c.kernel_name if c is not None else
                                                       choose_config(m, e, n, kk, "bf16", None, False).kernel_name)
                                                  for nm, c in cfgs.items()}}
    info["rel_err_vs_grouped_mm"] = {nm: float((o.reshape(m, n).float() - ref).norm() / ref.norm())
                                     for nm, o in outs.items() if nm != "grouped_mm"}
    ms = time_interleaved(calls, repeats=5)
    info.update(ms)
    flops = 2 * m * n * kk
    bytes_ = (sum(1 for c in counts if c) * n * kk + m * kk + m * n) * 2
    floor = max(flops / COMPUTE_CEILING_TFLOPS / 1e9, bytes_ / MEMORY_CEILING_TBPS / 1e9)
    med = {nm: sorted(v)[len(v) // 2] for nm, v in ms.items()}
    info["efficiency"] = {nm: round(floor / v, 3) for nm, v in med.items()}
    info["tflops"] = {nm: round(flops / v / 1e9, 1) for nm, v in med.items()}
    print(info, flush=True)
    return info


if __name__ == "__main__":
    main()
