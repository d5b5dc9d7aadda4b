"""What every benchmark shares: one timer, the ceilings, and the results file."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Ceilings of the H200 measured in shared/GPU.md (2026-11-28). The compute ceiling is
# re-measured in each GEMM benchmark run; 4.5 TB/s is the read rate reached on expert weights.
COMPUTE_CEILING_TFLOPS = 755.0
MEMORY_CEILING_TBPS = 4.5


def layer_weights(h: int, i: int, e: int) -> tuple[Any, Any]:
    """Random bf16 expert weights of one layer on the GPU, scaled by 1 / sqrt(K): the gate/up weight
    packed for the fused SiLU (``[E, 2I, H]``), and the down weight (``[E, H, I]``). Draws from
    torch's global generator (seed it first for repeatable weights)."""
    import torch

    import staticbatch_moe as moe

    w1 = moe.pack_gate_up(torch.randn(e, 2 * i, h, device="cuda", dtype=torch.bfloat16) / h**0.5)
    w2 = torch.randn(e, h, i, device="cuda", dtype=torch.bfloat16) / i**0.5
    return w1, w2


def time_interleaved(calls: dict[str, Callable[[], None]], repeats: int = 3, reps: int = 10) -> dict[str, list[float]]:
    """:func:`interleaved_ms` with the benchmark's read flush: ``repeats`` medians of ``reps``
    replays of each call, in turns, so that a drift of the machine spreads over every call alike."""
    return interleaved_ms(calls, repeats, reps, flush_l2="read")


def exact_routing(t: int, e: int, k: int) -> Any:
    """top-k ids in which every expert gets exactly t * k / e rows (token t, slot j -> expert
    (t * k + j) mod e; distinct experts per token while k <= e), on the GPU."""
    import torch

    return (torch.arange(t * k, device="cuda", dtype=torch.int64).view(t, k) % e).to(torch.int32)


def layer_inputs(model: str, t: int) -> tuple[Any, Any, Any]:
    """(w1, w2, x) of one point of a layer check: :func:`layer_weights` after
    ``torch.manual_seed(0)``, then ``t`` random bf16 token rows."""
    import torch

    import staticbatch_moe as moe

    h, i, e, _ = moe.MODEL_SHAPES[model]
    torch.manual_seed(0)
    w1, w2 = layer_weights(h, i, e)
    return w1, w2, torch.randn(t, h, device="cuda", dtype=torch.bfloat16)


def layer_plan(model: str, t: int, kind: str) -> Any:
    """The route plan of ``kind`` routing of ``t`` tokens for ``model``: ``"uniform"`` or
    ``"skewed"`` as bench_grouped_gemm draws it (its own generator, seeded by ``t``), or
    ``"exact"`` (:func:`exact_routing`). Draws nothing from torch's global generator."""
    from bench_grouped_gemm import routing

    import staticbatch_moe as moe

    _, _, e, k = moe.MODEL_SHAPES[model]
    ids = exact_routing(t, e, k) if kind == "exact" else routing(kind, t, e, k, seed=t)
    return moe.route_plan(ids, e)


def parse_points(text: str, default: list[tuple[str, int, str]]) -> list[tuple[str, int, str]]:
    """``--points Model:T:routing,...`` of the dev checks, or ``default`` when empty."""
    if not text:
        return default
    return [(p.split(":")[0], int(p.split(":")[1]), p.split(":")[2]) for p in text.split(",")]


def hopper_points(name: str, default: list[tuple[str, int, str]]) -> list[tuple[str, int, str]] | None:
    """The points of dev check ``name``: ``--points Model:T:routing,...`` or ``default``; None
    (after saying so) where there is no Hopper GPU to run it on."""
    import argparse

    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--points", default="")
    args = ap.parse_args()
    if not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0):
        print(f"{name} needs a Hopper GPU")
        return None
    return parse_points(args.points, default)


def tiled_layer_weights(w1p: Any, w2: Any) -> tuple[Any, Any]:
    """The gate/up weight ``w1p`` (a GateUpWeight) and the down weight ``w2`` as tiled weights."""
    import staticbatch_moe as moe

    return moe.GateUpWeight(moe.pack_weight(w1p.packed)), moe.pack_weight(w2)


def layer_point(model: str, t: int, kind: str) -> tuple[Any, Any, Any, Any]:
    """(w1, w2, x, plan): :func:`layer_inputs` and :func:`layer_plan`."""
    return (*layer_inputs(model, t), layer_plan(model, t, kind))


def tiled_layer_point(model: str, t: int, kind: str) -> tuple[Any, Any, Any, Any]:
    """:func:`layer_point` with the weights tiled (:func:`tiled_layer_weights`), the plain ones dropped."""
    w1p, w2p, x, plan = layer_point(model, t, kind)
    return (*tiled_layer_weights(w1p, w2p), x, plan)


def layer_classes(model: str, t: int, tiled_w: bool = False) -> dict[str, Any]:
    """The heuristic's tile classes of both GEMMs of ``model``'s layer at ``t`` tokens: ``"up"``
    (gate/up, gathered, SiLU fused) and ``"down"``, for weights as given or tiled (``tiled_w``)."""
    import staticbatch_moe as moe
    from staticbatch_moe._gemm_config import choose_tile_classes

    h, i, e, k = moe.MODEL_SHAPES[model]
    return {"up": choose_tile_classes(t * k, e, 2 * i, h, "bf16", "silu_and_mul", True, num_tokens=t, tiled_w=tiled_w),
            "down": choose_tile_classes(t * k, e, h, i, "bf16", None, False, num_tokens=t, tiled_w=tiled_w)}


class LayerGemms:
    """The two GEMMs of one MoE layer on random data, for A/B checks of configurations: uniform
    routing of ``t`` tokens, the gate/up GEMM (``"up"``: gathered, SiLU fused) and the down GEMM
    (``"down"``: on random grouped rows). Draws from torch's global generator. With
    ``data=False`` only the shape (for :meth:`chosen`, e.g. to compile the configurations first)."""

    def __init__(self, model: str, t: int, data: bool = True) -> None:
        import torch

        import staticbatch_moe as moe

        self.model, self.t = model, t
        self.h, self.i, self.e, self.k = moe.MODEL_SHAPES[model]
        if not data:
            return
        self.x = torch.randn(t, self.h, device="cuda", dtype=torch.bfloat16)
        self.w1, self.w2 = layer_weights(self.h, self.i, self.e)
        ids = torch.rand(t, self.e, device="cuda").topk(self.k, dim=1).indices.to(torch.int32)
        self.plan = moe.route_plan(ids, self.e)
        self.mid = torch.randn(t * self.k, self.i, device="cuda", dtype=torch.bfloat16)

    def chosen(self, gemm: str) -> Any:
        """The heuristic's configuration of ``gemm``."""
        from staticbatch_moe._gemm_config import choose_config

        m = self.t * self.k
        if gemm == "up":
            return choose_config(m, self.e, 2 * self.i, self.h, "bf16", "silu_and_mul", True)
        return choose_config(m, self.e, self.h, self.i, "bf16", None, False)

    def call(self, gemm: str, cfg: Any) -> tuple[Any, Callable[[], None]]:
        """A NaN-poisoned output and the call that fills it with ``cfg`` (not yet run)."""
        import torch

        import staticbatch_moe as moe

        out = torch.full((self.t * self.k, self.i if gemm == "up" else self.h), float("nan"), device="cuda",
                         dtype=torch.bfloat16)
        if gemm == "up":
            def fn() -> None:
                moe.grouped_gemm(self.x, self.w1, self.plan, activation="silu_and_mul", out=out, config=cfg)
        else:
            def fn() -> None:
                moe.grouped_gemm(self.mid, self.w2, self.plan, gather=False, out=out, config=cfg)
        return out, fn

    def reference(self, gemm: str) -> Any:
        """The float32 reference of ``gemm``."""
        import staticbatch_moe as moe

        if gemm == "up":
            return moe.grouped_gemm_reference(self.x, self.w1, self.plan, activation="silu_and_mul")
        return moe.grouped_gemm_reference(self.mid, self.w2, self.plan, gather=False)


def interleaved_ms(calls: dict[str, Callable[[], Any]], repeats: int, reps: int = 10,
                   flush_l2: bool | str = True) -> dict[str, list[float]]:
    """``repeats`` medians of ``reps`` replays (CUDA graph, L2 flushed as :func:`time_cuda`'s
    ``flush_l2`` says: written by default) of each call, in ms, the calls taking turns so that
    clock drift falls on all of them alike."""
    ms: dict[str, list[float]] = {n: [] for n in calls}
    for _ in range(repeats):
        for n, fn in calls.items():
            ms[n].append(round(time_cuda(fn, reps=reps, flush_l2=flush_l2)["median_ms"], 4))
    return ms


def time_cuda(fn: Callable[[], Any], *, reps: int = 50, warmup: int = 5, graph: bool = True,
              flush_l2: bool | str = False, warmup_ms: float = 60.0) -> dict[str, float]:
    """Median, p20 and p80 of one call of ``fn`` in milliseconds.

    With ``graph`` the call is captured once in a CUDA graph and its replays are timed (no
    launch gaps, no Python overhead); each replay is timed alone with CUDA events. With
    ``flush_l2`` a 256 MB buffer is passed through the L2 between replays (outside the timed
    region): ``True`` or ``"write"`` writes it, ``"read"`` reads it. Both evict what the call
    read before. Writing also leaves the L2 full of dirty lines, whose write-back to DRAM then
    falls inside the next timed call.

    Before timing, the call runs (with the flush) for at least ``warmup_ms`` of GPU time. On the
    H200 the first ~20 ms of replays after heavy, differently shaped work (building the inputs,
    the float32 reference, another peer) ran up to 10 % slower than later ones
    (DeepSeek-V3 T = 16: 2.25 against 2.04 ms, 2026-11-28), which made the result depend on
    which candidate was timed first.
    """
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    run = fn
    if graph:
        g = torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            fn()  # warm on the side stream too
            torch.cuda.synchronize()
            with torch.cuda.graph(g, stream=stream):
                fn()
        torch.cuda.current_stream().wait_stream(stream)
        run = g.replay
        run()
    flush = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda") if flush_l2 else None
    if flush is not None:
        flush.fill_(1)

    def flush_cache(i: int) -> None:
        if flush is None:
            return
        if flush_l2 == "read":  # evict by reading: the L2 is left holding clean lines
            flush.max()
        else:  # "write" / True: evict by writing, which leaves the L2 full of dirty lines
            flush.fill_(i & 0xFF)

    # Warm up by GPU time: one timed call sizes the loop.
    probe = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
    probe[0].record()
    run()
    probe[1].record()
    torch.cuda.synchronize()
    once_ms = max(probe[0].elapsed_time(probe[1]), 1e-3)
    for i in range(min(2000, max(warmup, int(warmup_ms / once_ms) + 1))):
        flush_cache(i)
        run()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    stops = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    torch.cuda.synchronize()
    for i in range(reps):
        flush_cache(i)
        starts[i].record()
        run()
        stops[i].record()
    torch.cuda.synchronize()
    times = sorted(s.elapsed_time(e) for s, e in zip(starts, stops))
    q = lambda f: times[min(len(times) - 1, int(f * len(times)))]  # noqa: E731
    return {"median_ms": q(0.5), "p20_ms": q(0.2), "p80_ms": q(0.8)}


def environment() -> dict[str, Any]:
    import torch

    import staticbatch
    from staticbatch import _compile

    def _v(name: str) -> str:
        try:
            from importlib.metadata import version

            return version(name)
        except Exception:
            return "unknown"

    # The device machine gets a copy of the working tree without git history: pass the commit
    # in STATICBATCH_COMMIT there.
    commit, dirty = os.environ.get("STATICBATCH_COMMIT", ""), None
    if not commit:
        try:
            head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
            status = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
            if head.returncode == 0 and status.returncode == 0:
                commit, dirty = head.stdout.strip(), bool(status.stdout.strip())
        except OSError:
            pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit or "unknown",
        "dirty": dirty,
        "gpu": gpu,
        "versions": {
            "staticbatch": staticbatch.__version__,
            "torch": torch.__version__,
            "cuda_runtime": torch.version.cuda,
            "cuda-core": _v("cuda-core"),
            "cuda-bindings": _v("cuda-bindings"),
            "nvrtc": ".".join(map(str, _compile.nvrtc_version())),
            "python": platform.python_version(),
        },
    }


def save(name: str, rows: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> Path:
    """Write ``benchmarks/results/<name>.json`` (and a copy under $OUT when set)."""
    payload = {"benchmark": name, **environment(), **(extra or {}), "rows": rows}
    text = json.dumps(payload, indent=1)
    path = ROOT / "benchmarks" / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    out = os.environ.get("OUT")
    if out:
        Path(out, f"{name}.json").write_text(text)
    return path


def compile_configs(configs: list[Any]) -> dict[str, str]:
    """Compile grouped-GEMM configurations in parallel (NVRTC, ptxas report on) and return
    ``{kernel name: "N regs, spill S/L B"}`` (or a note when the cubin came from the cache)."""
    import staticbatch as sb
    from staticbatch_moe import _gemm_config as cfgmod

    t = time.time()
    compiled = sb.compile_many([(cfgmod.kernel_source(c), c.kernel_name) for c in configs],
                               options=("--ptxas-options=-v",))
    print(f"compiled {len(configs)} configurations in {time.time() - t:.1f}s", flush=True)
    report = {}
    for c, comp in zip(configs, compiled):
        text = comp.log or ""
        regs = re.search(r"Used (\d+) registers", text)
        spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", text)
        report[c.kernel_name] = (f"{regs.group(1)} regs, spill {spill.group(1)}/{spill.group(2)} B"
                                 if regs and spill else "from the cache (no ptxas report)")
    return report


def time_gemm_variants(points: list[tuple[str, int, str]],
                       variants: Callable[[str, int, str, Any, Any], dict[str, tuple[Any, Any, Any]]],
                       repeats: int = 3, configs: list[Any] | None = None) -> list[dict[str, Any]]:
    """Each GEMM of the layer (``"up"``: gathered, SiLU fused; ``"down"``: on random grouped rows)
    at each ``(model, T, routing)`` of ``points``, run by every variant that ``variants(model, t,
    gemm, plain, tiled)`` makes of the GEMM's weight as given and tiled (``pack_weight``):
    ``{name: (weight, config, hook)}``, with ``config`` grouped_gemm's ``config=`` (None: the
    heuristic) and ``hook`` a callable run before every call of the variant, or None. ``configs``
    are compiled first, in parallel. Outputs are NaN-poisoned and compared bit for bit with the
    first variant's, then timed in ``repeats`` interleaved repeats of a median of 10 replays,
    L2 read-flushed. One row per point and GEMM: ``ms``, ``median_ms`` (the middle repeat),
    ``bit_identical`` and ``nan_free``; each variant's kernels unless a hook is given."""
    import torch

    import staticbatch_moe as moe

    if configs:
        print(compile_configs(sorted(set(configs), key=lambda c: c.kernel_name)), flush=True)
    rows = []
    for model, t, kind in points:
        w1p, w2, x, plan = layer_point(model, t, kind)
        tiled = dict(zip(("up", "down"), tiled_layer_weights(w1p, w2)))
        h, i, _, _ = moe.MODEL_SHAPES[model]
        mid = torch.randn(plan.num_rows, i, device="cuda", dtype=torch.bfloat16)
        valid = int(plan.expert_starts[-1])
        for gemm, plain in (("up", w1p), ("down", w2)):
            up = gemm == "up"
            calls, outs = {}, {}
            for name, (w, cfg, hook) in variants(model, t, gemm, plain, tiled[gemm]).items():
                out = torch.full((plan.num_rows, i if up else h), float("nan"), device="cuda", dtype=torch.bfloat16)

                def fn(out=out, w=w, cfg=cfg, hook=hook, up=up, x=x, plan=plan, mid=mid) -> None:  # type: ignore[no-untyped-def]
                    if hook is not None:
                        hook()
                    if up:
                        moe.grouped_gemm(x, w, plan, activation="silu_and_mul", out=out, config=cfg)
                    else:
                        moe.grouped_gemm(mid, w, plan, gather=False, out=out, config=cfg)

                fn()
                torch.cuda.synchronize()
                calls[name], outs[name] = fn, out
            first = next(iter(outs.values()))[:valid]
            ms = time_interleaved(calls, repeats=repeats, reps=10)
            rows.append({"model": model, "T": t, "routing": kind, "gemm": gemm,
                         "bit_identical": {n: bool(torch.equal(o[:valid], first)) for n, o in outs.items()},
                         "nan_free": not bool(first.isnan().any()), "ms": ms,
                         "median_ms": {n: sorted(v)[len(v) // 2] for n, v in ms.items()}})
            del calls, outs
        del w1p, w2, x, plan, tiled, mid
        torch.cuda.empty_cache()
    return rows


def heuristic_variants_main(name: str, default_points: list[tuple[str, int, str]],
                            variants: Callable[[str, int, str, Any, Any], dict[str, tuple[Any, Any, Any]]],
                            configs: Any, note: str, repeats: int = 5) -> int:
    """The ``main`` of a dev check whose variants (:func:`time_gemm_variants`) include the
    heuristic as ``"heuristic"``: ``--points Model:T:routing,...`` (else ``default_points``);
    compiles ``configs`` and the heuristic's tiled-weight classes at the points, times, adds each
    row's ``over_heuristic`` ratios, prints them and saves ``results/<name>.json`` with ``note``."""
    points = hopper_points(name, default_points)
    if points is None:
        return 0
    cfgs = set(configs) | {c.config for m, t, _ in points for cl in layer_classes(m, t, tiled_w=True).values()
                           for c in cl}
    compile_configs(sorted(cfgs, key=lambda c: c.kernel_name))
    rows = time_gemm_variants(points, variants, repeats=repeats)
    for row in rows:
        med = row["median_ms"]
        row["over_heuristic"] = {n: round(v / med["heuristic"], 4) for n, v in med.items() if n != "heuristic"}
        print_ratios(row, row["over_heuristic"], f"heuristic {med['heuristic']:.4f} ")
    save(name, rows, {"note": note})
    return 0


def normal_candidate(bm: int, bn: int, pp: bool, cluster: int, up: bool, tiled: bool = False) -> Any:
    """A normal-mode configuration for one GEMM of the layer (``up``: gathered by the staged copy,
    SiLU fused; else the down GEMM): ``bm x bn`` tiles, ping-pong or not, in clusters of
    ``cluster``, for a plain or tiled weight."""
    import dataclasses

    from staticbatch_moe._gemm_config import _normal_config

    cfg = _normal_config(bm, bn, pp, "silu_and_mul" if up else None, "bf16", up)
    if up:
        cfg = dataclasses.replace(cfg, gather_mode="staged")
    return dataclasses.replace(cfg, cluster=cluster, tiled_w=tiled)


def plain_and_tiled(configs: list[Any], plain: Any, tiled: Any) -> dict[str, tuple[Any, Any, None]]:
    """Variants for :func:`time_gemm_variants`: each configuration on the plain weight and on the
    tiled one, named by kernel (``..._wt`` for the tiled; ``None``, the heuristic, as
    ``heuristic`` / ``heuristic_wt``)."""
    import dataclasses

    out = {}
    for cfg in configs:
        for tw, w in ((False, plain), (True, tiled)):
            c = None if cfg is None else dataclasses.replace(cfg, tiled_w=tw)
            name = "heuristic" + ("_wt" if tw else "") if c is None else c.kernel_name.replace("sb_grouped_gemm_bf16_", "")
            out[name] = (w, c, None)
    return out


def add_tiled_over_plain(rows: list[dict[str, Any]]) -> None:
    """Give each row of :func:`time_gemm_variants` whose variants are kernel names, each on plain
    weights and (name + ``_wt``) on tiled ones, ``tiled_over_plain`` per kernel, and print it."""
    for row in rows:
        med = row["median_ms"]
        row["tiled_over_plain"] = {n: round(med[n] / med[n[:-3]], 4) for n in med if n.endswith("_wt")}
        print_ratios(row, row["tiled_over_plain"], "tiled / plain: ")


def print_ratios(row: dict[str, Any], ratios: dict[str, float], head: str = "") -> None:
    """One line per row of :func:`time_gemm_variants`: the point, ``head`` and ``ratios``."""
    print(f"{row['model']} T={row['T']} {row['routing']} {row['gemm']}: {head}"
          + " ".join(f"{n} {r:.3f}" for n, r in ratios.items())
          + f" all same {all(row['bit_identical'].values())}", flush=True)


def time_class_variants(points: list[tuple[str, int, str]], variants: Callable[[Any], dict[str, Any]],
                        repeats: int = 5) -> list[dict[str, Any]]:
    """Each GEMM of the layer (``"up"``: gathered, SiLU fused; ``"down"``: on random grouped rows)
    at each ``(model, T, routing)`` of ``points``, run with every set of tile classes that
    ``variants`` makes of the heuristic's (``{name: classes}``; the first is the reference). The
    classes' kernels are compiled first. Outputs are NaN-poisoned, checked for NaN in the
    reference and compared bit for bit with it, then timed in ``repeats`` interleaved repeats of
    a median of 10 replays (:func:`time_interleaved`). One row per point and GEMM."""
    import torch

    import staticbatch as sb
    import staticbatch_moe as moe
    from staticbatch_moe._gemm_config import kernel_source

    cfgs = {c.config for model, t, _ in points for cl in layer_classes(model, t).values()
            for v in variants(cl).values() for c in v}
    sb.compile_many([(kernel_source(c), c.kernel_name) for c in cfgs])
    rows = []
    for model, t, rt in points:
        h, i, e, k = moe.MODEL_SHAPES[model]
        w1, w2, x, plan = layer_point(model, t, rt)
        mid_in = torch.randn(t * k, i, device="cuda", dtype=torch.bfloat16)
        valid = int(plan.expert_starts[-1])
        for gemm, cl in layer_classes(model, t).items():
            up = gemm == "up"
            a, w, n_out = (x, w1, i) if up else (mid_in, w2, h)
            info: dict[str, Any] = {"model": model, "T": t, "routing": rt, "gemm": gemm}
            calls, first = {}, None
            for name, classes in variants(cl).items():
                info[name + "_kernels"] = [c.config.kernel_name for c in classes]
                out = torch.full((t * k, n_out), float("nan"), device="cuda", dtype=torch.bfloat16)

                def fn(a=a, w=w, out=out, classes=classes, up=up) -> None:  # type: ignore[no-untyped-def]
                    moe.grouped_gemm(a, w, plan, gather=up, activation="silu_and_mul" if up else None, out=out,
                                     config=classes)
                fn()
                torch.cuda.synchronize()
                if first is None:
                    first = out.clone()
                    info["nan_free"] = not bool(torch.isnan(out[:valid]).any())
                else:
                    info[name + "_bit_identical"] = bool(torch.equal(out, first))
                calls[name] = fn
            info.update(time_interleaved(calls, repeats=repeats))
            print(info, flush=True)
            rows.append(info)
        del w1, w2, x, mid_in, first, calls
        torch.cuda.empty_cache()
    return rows


def class_variants_main(name: str, points: list[tuple[str, int, str]], variants: Callable[[Any], dict[str, Any]],
                        argv: list[str]) -> None:
    """The ``main`` of a tile-class A/B script: :func:`time_class_variants` at ``points``, or at
    the points given as ``MODEL:T:ROUTING`` arguments (then saved as ``<name>_<model>_<T>``),
    saved as ``benchmarks/results/<name>.json``."""
    if argv:
        points = [(m, int(t), r) for m, t, r in (a.split(":") for a in argv)]
        name += "".join(dict.fromkeys(f"_{m.split('-')[0]}_{t}" for m, t, _ in points))
    rows = time_class_variants(points, variants)
    save(name, rows, {"note": "ms, each GEMM alone, five interleaved repeats"})
