"""How much running the hot class beside the other classes could save under skewed routing (dev check
on the H200, not a test).

With skewed routing at T = 4096 the heuristic's classes run one after the other: the hot experts'
128-row clustered tiles (compute-bound), then the ping-pong and fitted tiles of the others
(mostly weight streaming). Each launch is a persistent grid over every SM. This times both GEMMs
of a layer with the classes launched as the library does (``shipped``), and with the hot class on a
second stream over X SMs while the other classes run over the other 132 - X (``split_X``), joined
before the down GEMM and at the end: a fixed split of the SMs that needs no kernel change, which
bounds from below what a scheduler that shares the SMs as the work requires could save (and, under
uniform routing, where the hot class is empty, shows what a fixed split costs). No programmatic
launches in the split variants. Outputs are compared with the shipped calls' (bit-identical: the
same tiles, fewer blocks). Five interleaved repeats of a median of 10 replays, L2 read-flushed.
Result: benchmarks/results/dev_concurrent_classes_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_concurrent_classes_check.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import layer_classes, layer_point, save, time_interleaved

import staticbatch as sb
import staticbatch_moe as moe
import staticbatch_moe.gemm as gemm_mod
from staticbatch_moe._gemm_config import kernel_source

_SMS: dict = {}  # kernel name -> SMs its launch may use (the split variants)
_kernel_for = gemm_mod._kernel_for


def _kernel_for_split(config, device_index, *, mlp=False):  # type: ignore[no-untyped-def]
    kernel, sms = _kernel_for(config, device_index, mlp=mlp)
    return kernel, _SMS.get(config.kernel_name, sms)


gemm_mod._kernel_for = _kernel_for_split

PTS = [(m, 4096, r) for m in ("DeepSeek-V3", "GPT-OSS-120B", "Qwen3-235B-A22B") for r in ("skewed", "uniform")]
SPLITS = (44, 66)


def split_gemm(a, w, plan, out, classes, hot_sms: int, *, gather: bool, activation) -> None:  # type: ignore[no-untyped-def]
    """grouped_gemm's launches with classes[0] on a side stream over hot_sms SMs, the rest here."""
    weight, n, _ = gemm_mod._validate(a, w, plan, gather, activation, out)
    k = weight.shape[2]
    lda = a.stride(0)
    dev = a.device.index
    offsets = [plan.tile_offsets(c.config.block_m, c.config.block_n, n, c.config.split_k, (c.min_rows, c.max_rows))
               for c in classes]
    staged = None
    if any(c.config.gather and c.config.gather_mode == "staged" for c in classes):
        staged = torch.empty(plan.num_rows, k, dtype=a.dtype, device=a.device)
    num_sms = sb.device_properties(dev).num_sms
    for c in classes[1:]:
        _SMS[c.config.kernel_name] = num_sms - hot_sms
    _SMS[classes[0].config.kernel_name] = hot_sms
    main = torch.cuda.current_stream()
    side = _streams.setdefault(main.cuda_stream, torch.cuda.Stream())
    side.wait_stream(main)
    with torch.cuda.stream(side):
        gemm_mod._launch(classes[0].config, dev, a, lda, weight, out, plan, n, k, gather, offsets[0], staged, False)
    for c, off in zip(classes[1:], offsets[1:]):
        gemm_mod._launch(c.config, dev, a, lda, weight, out, plan, n, k, gather, off, staged, False)
    main.wait_stream(side)
    _SMS.clear()


_streams: dict = {}


def main() -> None:
    cfgs = {c.config for model, t, _ in PTS for g in layer_classes(model, t).values() for c in g}
    sb.compile_many([(kernel_source(c), c.kernel_name) for c in cfgs])

    rows = []
    for model, t, rt in PTS:
        h, i, e, k = moe.MODEL_SHAPES[model]
        w1, w2, x, plan = layer_point(model, t, rt)
        up, down = layer_classes(model, t).values()
        info = {"model": model, "T": t, "routing": rt,
                "classes": {g: [(c.config.kernel_name, c.min_rows, c.max_rows) for c in cl]
                            for g, cl in (("up", up), ("down", down))}}
        calls = {}
        first = None
        for name in ["shipped"] + [f"split_{s}" for s in SPLITS]:
            mid = torch.full((t * k, i), float("nan"), device="cuda", dtype=torch.bfloat16)
            out = torch.full((t * k, h), float("nan"), device="cuda", dtype=torch.bfloat16)
            if name == "shipped":
                def fn(mid=mid, out=out) -> None:  # type: ignore[no-untyped-def]
                    moe.grouped_gemm(x, w1, plan, activation="silu_and_mul", out=mid)
                    moe.grouped_gemm(mid, w2, plan, gather=False, out=out, programmatic_launch=True)
            else:
                hot_sms = int(name.split("_")[1])

                def fn(mid=mid, out=out, hot_sms=hot_sms) -> None:  # type: ignore[no-untyped-def]
                    split_gemm(x, w1, plan, mid, up, hot_sms, gather=True, activation="silu_and_mul")
                    split_gemm(mid, w2, plan, out, down, hot_sms, gather=False, activation=None)
            fn()
            torch.cuda.synchronize()
            if first is None:
                first = out.clone()
            else:
                info[f"{name}_bit_identical_to_shipped"] = bool(torch.equal(out, first))
            calls[name] = fn
        info.update(time_interleaved(calls, repeats=5))
        print({kk: v for kk, v in info.items() if kk != "classes"}, flush=True)
        rows.append(info)
        w1 = w2 = x = first = None
        calls = {}
        torch.cuda.empty_cache()
    save("dev_concurrent_classes_check", rows, {"note": "ms, both GEMMs, five interleaved repeats; split_X: the "
                                                        "hot class on X SMs on a second stream"})


if __name__ == "__main__":
    main()
