"""Where a computing consumer group waits, in clock cycles (dev check on the H200, not a test).

Compiles the kernels with ``-DSB_DEV_STALL``: thread 0 of each consumer warp group of a launch
with a counter buffer (the staged gate/up GEMMs) stamps ``clock64`` around each wait on a stage's
full barrier (split by the K step: the first ``kStages`` steps of a tile, where its ring was
filled while the tile before ran, and the later ones), around the ping-pong order barrier, and
over its whole run, and a histogram of the later steps' waits (every tile), and adds them into
the launch's counter buffer. dev_low_points_stalls_ncu.txt
found the computing group waiting for its stages' data about half the time at Qwen3-30B-A3B T =
4096; this says whether those waits sit at the tiles' first steps (the ring's refill between
tiles) or throughout. Gate/up GEMM of each point, uniform routing, tiled weights, the heuristic's
tiles, one call after a warm-up. Result: benchmarks/results/dev_stage_wait_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_stage_wait_check.py [--points Model:T:routing,...]
"""
import os
import sys

os.environ["STATICBATCH_NVRTC_OPTIONS"] = (os.environ.get("STATICBATCH_NVRTC_OPTIONS", "") + " -DSB_DEV_STALL").strip()

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import hopper_points, layer_classes, save, tiled_layer_point  # noqa: E402

import staticbatch_moe as moe  # noqa: E402
import staticbatch_moe.gemm as gemm_mod  # noqa: E402

POINTS = [("Qwen3-30B-A3B", 4096, "uniform"), ("Qwen3-235B-A22B", 4096, "uniform"), ("Mixtral-8x7B", 1024, "uniform"),
          ("Qwen3-30B-A3B", 16384, "uniform"), ("GPT-OSS-120B", 16384, "uniform"), ("DeepSeek-V3", 16384, "uniform")]
NAMES = ("wait_first_steps", "n_first_steps", "wait_later_steps", "n_later_steps", "wait_order_barrier",
         "n_order_barrier", "wait_partial_tiles", "n_partial_tiles", "group_cycles", "groups", "later_lt256",
         "later_lt512", "later_lt768", "later_lt1024", "later_lt2048", "later_ge2048")


def main() -> int:
    points = hopper_points("dev_stage_wait_check", POINTS)
    if points is None:
        return 0
    rows = []
    for model, t, rt in points:
        w1, w2, x, plan = tiled_layer_point(model, t, rt)
        i = moe.MODEL_SHAPES[model][1]
        mid = torch.empty(plan.num_rows, i, device="cuda", dtype=torch.bfloat16)
        counters = gemm_mod._counters("barrier", 8192, x.device)
        moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid)
        torch.cuda.synchronize()
        counters[64:96].zero_()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid)
        end.record()
        torch.cuda.synchronize()
        v = dict(zip(NAMES, counters[64:96].view(torch.int64).tolist()))
        total = v["group_cycles"]
        row = {"model": model, "T": t, "routing": rt, "ms": start.elapsed_time(end),
               "kernel": [c.config.kernel_name for c in layer_classes(model, t, tiled_w=True)["up"]], **v,
               "share_of_group_time": {k: round(v[k] / total, 4) for k in NAMES[0:8:2]} if total else None,
               "cycles_per_wait": {k: round(v[k] / max(1, v["n" + k[4:]])) for k in NAMES[0:8:2]}}
        print(row, flush=True)
        rows.append(row)
        del w1, w2, x, plan, mid
        torch.cuda.empty_cache()
    save("dev_stage_wait_check", rows, {"note": "gate/up alone, one call after a warm-up; clock64 sums of thread 0 of "
                                                 "each consumer warp group (SB_DEV_STALL)"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
