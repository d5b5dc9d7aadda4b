"""How each tile class's time scales with the SMs it is given, under skewed routing (dev check on
the H200, not a test).

The skew floor fails where the hot experts' compute-bound class and the cold experts' weight
streaming run one launch after the other (DeepSeek-V3 and GPT-OSS-120B at T = 4096). Running them
side by side on disjoint SMs only pays if a class keeps its pace on fewer SMs: the streaming class
must pull more bytes per SM when fewer SMs share the DRAM, and the hot class must not need the
DRAM the streaming class uses. This times each class of each GEMM alone over G SMs (a persistent
grid of G blocks, every other SM idle), and the hot class on a second stream over X SMs beside the
others over 132 - X (``split_X``, as dev_concurrent_classes_check, which measured X = 44 and 66).
From the alone times it prints the best fixed split, max(hot(X), rest(132 - X)), and an elastic
one (the rest grows onto the hot class's SMs when it ends). Tiled weights, the heuristic's classes.
Three interleaved repeats of a median of 10 replays, L2 read-flushed. The ``_evict_first`` results
were taken with an L2 evict-first policy on the swap tiles' weight copies (``-DSB_DEV_SWAP_W_EVICT_FIRST``,
a dev macro of commit cb3b4f8, removed after it: 0-5 % on the stream splits, not kept).
Result: benchmarks/results/dev_class_scaling_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_class_scaling_check.py [--points DeepSeek-V3:4096:skewed]
"""
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dev_concurrent_classes_check as cc  # noqa: E402  (patches gemm._kernel_for for grid sizes)
from common import hopper_points, layer_classes, save, tiled_layer_point, time_interleaved  # noqa: E402

import staticbatch as sb  # noqa: E402
import staticbatch_moe as moe  # noqa: E402
import staticbatch_moe.gemm as gemm_mod  # noqa: E402
from staticbatch_moe._gemm_config import kernel_source  # noqa: E402

POINTS = [("DeepSeek-V3", 4096, "skewed"), ("GPT-OSS-120B", 4096, "skewed")]
SMS = tuple(int(v) for v in os.environ.get("DEV_SMS", "22,44,66,88,110,132").split(","))
SPLITS = tuple(int(v) for v in os.environ.get("DEV_SPLITS", "66,88").split(","))
#: Hot classes without their 2-CTA cluster (``--no-cluster``): a cluster needs two free SMs of one
#: GPC, which the other class's blocks may not leave it, so the split then measures placement.
NO_CLUSTER = "--no-cluster" in sys.argv
#: Hot classes also with dynamic tiles (``--dynamic-hot``, implies --no-cluster; cooperative, not
#: ping-pong): neighbouring tiles start together, which cuts the hot class's DRAM re-reads.
DYNAMIC_HOT = "--dynamic-hot" in sys.argv
NO_CLUSTER = NO_CLUSTER or DYNAMIC_HOT
for flag in ("--no-cluster", "--dynamic-hot"):
    if flag in sys.argv:
        sys.argv.remove(flag)


def layer_classes_used(model: str, t: int):  # type: ignore[no-untyped-def]
    """The heuristic's classes (tiled weights), the hot class without its cluster with --no-cluster."""
    out = {}
    for g, cl in layer_classes(model, t, tiled_w=True).items():
        if NO_CLUSTER and len(cl) > 1:
            hot = dataclasses.replace(cl[0].config, cluster=1)
            if DYNAMIC_HOT:
                hot = dataclasses.replace(hot, dynamic=True, pingpong=False)
            cl = (dataclasses.replace(cl[0], config=hot),) + cl[1:]
        out[g] = cl
    return out


def class_alone(a, w, plan, out, cls, sms: int, *, gather: bool, activation):  # type: ignore[no-untyped-def]
    """A call that launches only tile class ``cls`` of the GEMM over ``sms`` SMs."""
    weight, n, _ = gemm_mod._validate(a, w, plan, gather, activation, out)
    k = weight.shape[2]
    stored = weight.tiles if isinstance(weight, moe.TiledWeight) else weight
    off = plan.tile_offsets(cls.config.block_m, cls.config.block_n, n, cls.config.split_k, (cls.min_rows, cls.max_rows))
    staged = None
    if cls.config.gather and cls.config.gather_mode == "staged":
        staged = torch.empty(plan.num_rows, k, dtype=a.dtype, device=a.device)
    grid = sms - sms % cls.config.cluster

    def fn() -> None:
        cc._SMS[cls.config.kernel_name] = grid
        gemm_mod._launch(cls.config, a.device.index, a, a.stride(0), stored, out, plan, n, k, gather, off, staged, False)
        cc._SMS.clear()

    return fn


def split_call(a, w, plan, out, classes, hot_sms: int, *, gather: bool, activation):  # type: ignore[no-untyped-def]
    """A call with classes[0] on a side stream over hot_sms SMs and the others here over the rest."""
    num_sms = sb.device_properties(a.device.index).num_sms
    hot = class_alone(a, w, plan, out, classes[0], hot_sms, gather=gather, activation=activation)
    rest = [class_alone(a, w, plan, out, c, num_sms - hot_sms, gather=gather, activation=activation)
            for c in classes[1:]]
    side = torch.cuda.Stream()

    def fn() -> None:
        main = torch.cuda.current_stream()
        side.wait_stream(main)
        with torch.cuda.stream(side):
            hot()
        for r in rest:
            r()
        main.wait_stream(side)

    return fn


def main() -> int:
    points = hopper_points("dev_class_scaling_check", POINTS)
    if points is None:
        return 0
    cfgs = {c.config for model, t, _ in points for g in layer_classes_used(model, t).values() for c in g}
    sb.compile_many([(kernel_source(c), c.kernel_name) for c in cfgs])
    num_sms = sb.device_properties(0).num_sms
    rows = []
    for model, t, rt in points:
        h, i, e, k = moe.MODEL_SHAPES[model]
        w1, w2, x, plan = tiled_layer_point(model, t, rt)
        mid_in = torch.randn(t * k, i, device="cuda", dtype=torch.bfloat16)
        for gemm, classes in layer_classes_used(model, t).items():
            up = gemm == "up"
            a, w = (x, w1) if up else (mid_in, w2)
            out = torch.empty(t * k, i if up else h, device="cuda", dtype=torch.bfloat16)
            kw = {"gather": up, "activation": "silu_and_mul" if up else None}
            calls = {}
            for ci, cls in enumerate(classes):
                for s in SMS:
                    calls[f"c{ci}_{s}"] = class_alone(a, w, plan, out, cls, s, **kw)
            calls["shipped"] = lambda a=a, w=w, out=out, kw=kw: moe.grouped_gemm(a, w, plan, out=out, **kw)  # noqa: E731
            for s in SPLITS:
                calls[f"split_{s}"] = split_call(a, w, plan, out, classes, s, **kw)
            for fn in calls.values():
                fn()
            torch.cuda.synchronize()
            ms = time_interleaved(calls, repeats=3)
            med = {n: sorted(v)[1] for n, v in ms.items()}
            row = {"model": model, "T": t, "routing": rt, "gemm": gemm,
                   "classes": [(c.config.kernel_name, c.min_rows, c.max_rows) for c in classes], "ms": ms}
            if len(classes) > 1:
                hot = {s: med[f"c0_{s}"] for s in SMS}
                rest = {s: sum(med[f"c{ci}_{s}"] for ci in range(1, len(classes))) for s in SMS}
                fixed = {x_: max(hot[x_], rest[num_sms - x_]) for x_ in SMS if num_sms - x_ in rest}
                # Elastic: the rest runs on 132 - X SMs until the hot class ends, then on all of them.
                elastic = {}
                for x_ in SMS:
                    if num_sms - x_ not in rest:
                        continue
                    done = min(1.0, hot[x_] / rest[num_sms - x_])
                    elastic[x_] = hot[x_] + (1 - done) * rest[num_sms]
                row.update(fixed_split_ms=fixed, elastic_split_ms=elastic,
                           sequential_ms=hot[num_sms] + rest[num_sms])
            print({kk: v for kk, v in row.items() if kk != "ms"}, {n: med[n] for n in med}, flush=True)
            rows.append(row)
        torch.cuda.empty_cache()
    save("dev_class_scaling_check" + os.environ.get("DEV_TAG", "") + ("_dynamic_hot" if DYNAMIC_HOT else "_no_cluster" if NO_CLUSTER else ""), rows, {"note": "ms; cN_G: class N alone over G SMs; split_X: the hot class "
                                                   "on X SMs on a second stream beside the rest"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
