"""Where and when the blocks of concurrent classes run (dev check on the H200, not a test).

Compiles the kernels with ``-DSB_DEV_TRACE``: each block of a hot or cold launch of concurrent
classes writes its SM, its start and end (``%globaltimer``) and its place in the split into the
launch's counter buffer. Runs both GEMMs of a layer once (after a warm-up) at the given points
with ``USE_CONCURRENT_CLASSES`` and summarises per GEMM and launch: blocks that ran tiles, the SMs
they ran on, when they started and ended (us from the first start). Also times the same call with
the classes one after the other and concurrent, untraced numbers being in
dev_concurrent_split_check. Result: benchmarks/results/dev_concurrent_trace.json.

Run::

    PYTHONPATH=. python benchmarks/dev_concurrent_trace.py [--points DeepSeek-V3:4096:skewed]
"""
import os
import sys

os.environ["STATICBATCH_NVRTC_OPTIONS"] = (os.environ.get("STATICBATCH_NVRTC_OPTIONS", "") + " -DSB_DEV_TRACE").strip()

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import hopper_points, layer_classes, save, tiled_layer_point  # noqa: E402

import staticbatch as sb  # noqa: E402
import staticbatch_moe as moe  # noqa: E402
import staticbatch_moe.gemm as gemm_mod  # noqa: E402
from staticbatch_moe import _gemm_config as cfgmod  # noqa: E402

POINTS = [("DeepSeek-V3", 4096, "skewed"), ("GPT-OSS-120B", 4096, "skewed")]


def summary(words: list[int], base: int, sms: int) -> dict:
    blocks = []
    for b in range(sms):
        smid, t0, t1, place = words[base + 4 * b: base + 4 * b + 4]
        blocks.append({"block": b, "sm": smid, "t0": t0, "t1": t1, "index": place & 0xFFFF, "share": place >> 16})
    return {"blocks": blocks}


def main() -> int:
    points = hopper_points("dev_concurrent_trace", POINTS)
    if points is None:
        return 0
    sms = sb.device_properties(0).num_sms
    rows = []
    for model, t, rt in points:
        h, i, e, k = moe.MODEL_SHAPES[model]
        w1, w2, x, plan = tiled_layer_point(model, t, rt)
        mid = torch.empty(plan.num_rows, i, device="cuda", dtype=torch.bfloat16)
        out = torch.empty(plan.num_rows, h, device="cuda", dtype=torch.bfloat16)
        counters = gemm_mod._counters("barrier", 8192, x.device)

        def call() -> None:
            moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid)
            moe.grouped_gemm(mid, w2, plan, gather=False, out=out, programmatic_launch=True)

        call()
        call()
        torch.cuda.synchronize()
        counters[64:].zero_()
        call()
        torch.cuda.synchronize()
        words = [int(v) & 0xFFFFFFFF for v in counters.tolist()]
        row = {"model": model, "T": t, "routing": rt,
               "classes": {g: [(c.config.kernel_name, c.min_rows, c.max_rows) for c in cl]
                           for g, cl in layer_classes(model, t, tiled_w=True).items()}}
        for g, off in (("up", 0), ("down", 2048)):
            hot = summary(words, 64 + off, sms)["blocks"]
            cold = summary(words, 64 + off + 1024, sms)["blocks"]
            t_min = min(b["t0"] for b in hot + cold if b["t0"])
            def rel(v: int) -> float:  # noqa: E306
                return round(((v - t_min) & 0xFFFFFFFF) / 1e3, 1) if v else -1.0
            for lst in (hot, cold):
                for b in lst:
                    b["t0"], b["t1"] = rel(b["t0"]), rel(b["t1"])
            act_h = [b for b in hot if b["index"] < b["share"]]
            act_c = [b for b in cold if b["index"] < b["share"] and b["t0"] >= 0]
            row[g] = {
                "hot_share": hot[0]["share"], "cold_share": cold[0]["share"] if cold else None,
                "hot_active": len(act_h), "cold_active": len(act_c),
                "hot_active_start_end_us": [min(b["t0"] for b in act_h), max(b["t1"] for b in act_h)] if act_h else None,
                "cold_active_start_end_us": [min(b["t0"] for b in act_c), max(b["t1"] for b in act_c)] if act_c else None,
                "cold_inactive_starts_us": sorted(b["t0"] for b in cold if b["index"] >= b["share"])[:5],
                "sms_overlap": len({b["sm"] for b in act_h} & {b["sm"] for b in act_c}),
                "hot": hot, "cold": cold,
            }
            print(model, t, rt, g, {kk: v for kk, v in row[g].items() if kk not in ("hot", "cold")}, flush=True)
        rows.append(row)
        w1 = w2 = x = mid = out = None
        torch.cuda.empty_cache()
    save("dev_concurrent_trace", rows, {"note": "per block: SM, start/end us from the first block's start"})
    return 0


if __name__ == "__main__":
    assert cfgmod.USE_CONCURRENT_CLASSES
    sys.exit(main())
