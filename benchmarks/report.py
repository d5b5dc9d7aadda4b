"""Turn benchmarks/results/*.json into the tables and plots of docs/performance.md.

Tables are written between ``<!-- BEGIN <name> -->`` and ``<!-- END <name> -->`` markers, so
the prose around them stays hand-written. Plots go to docs/img/. Needs matplotlib (only here).

Run: python benchmarks/report.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "performance.md"
IMG = ROOT / "docs" / "img"


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _stamp(d: dict) -> str:
    v = d["versions"]
    return (f"Measured {d['date'][:10]} on {d['gpu']}, commit `{d['commit']}`{' (dirty tree)' if d.get('dirty') else ''}, "
            f"torch {v['torch']}, NVRTC {v['nvrtc']}, cuda-bindings {v['cuda-bindings']}.")


def mapper_section() -> str | None:
    d = _load("bench_mapper")
    if not d:
        return None
    lines = [_stamp(d), "",
             f"One 128x256x64 bf16 GEMM step on one SM at the compute ceiling: {d['gemm_step_us']:.2f} us; "
             "a 128x256 tile with K = 4096 is 64 such steps.", "",
             "| tasks | tiles | mapper | kernel us | ns per tile (minus the bare loop) | % of one GEMM step | % of a K=4096 tile | table build us |",
             "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in d["rows"]:
        if r["mapper"] == "none":
            extra = "(baseline)"
            lines.append(f"| {r['tasks']} | {r['tiles']} | loop only | {r['median_ms'] * 1e3:.1f} | {extra} | | | |")
            continue
        build = f"{r['table_build_ms'] * 1e3:.1f}" if "table_build_ms" in r else ""
        lines.append(f"| {r['tasks']} | {r['tiles']} | {r['mapper']} | {r['median_ms'] * 1e3:.1f} | {r['ns_per_tile']:.1f} | "
                     f"{r['pct_of_gemm_step']:.2f} | {r['pct_of_tile_k4096']:.3f} | {build} |")
    lines += ["", "device_plan (one launch, one block, sizes [tasks, 2] on the GPU), CUDA-graph replay:", "",
              "| tasks | us |", "| ---: | ---: |"]
    lines += [f"| {r['tasks']} | {r['median_ms'] * 1e3:.1f} |" for r in d["device_plan"]]
    return "\n".join(lines)


def gemm_section(name: str = "bench_grouped_gemm") -> str | None:
    d = _load(name)
    if not d:
        return None
    lines = [_stamp(d), "",
             (f"Compute ceiling used: {d['compute_ceiling_tflops']:.0f} TFLOP/s (cuBLAS bf16 8192^3 measured in the same "
              f"run: {d['compute_ceiling_measured_tflops']:.0f}; never below shared/GPU.md's 755); "
              if "compute_ceiling_measured_tflops" in d else
              f"Compute ceiling measured in the same run: {d['compute_ceiling_tflops']:.0f} TFLOP/s (cuBLAS bf16 8192^3); ")
             + f"memory ceiling {d['memory_ceiling_tbps']} TB/s. "
             + {"read": "L2 flushed between timed replays by reading 256 MB (clean lines).",
                "write": "L2 flushed between timed replays by writing 256 MB (dirty lines).",
                "none": "L2 not flushed between timed replays."}[d.get("l2_flush", "write")], ""]
    s = d.get("summary", {})
    if s:
        lines.append("Summary (uniform routing): " + ", ".join(f"{k} = {v:.3f}" for k, v in s.items()) + ".")
        lines.append("")
    lines += ["| model | T | routing | ours ms | TFLOP/s | GB/s | efficiency | _grouped_mm ms | speedup | mm loop ms | speedup | dense cuBLAS ms | vLLM (GPU.md) ms | vLLM / ours | rel. err |",
              "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in d["rows"]:
        ms = r["ours"]["median_ms"]
        g = r.get("grouped_mm")
        lp = r.get("loop")
        v = r.get("vllm_gpu_md_ms")
        f = lambda x: f"{x['median_ms']:.3f}" if x else "-"  # noqa: E731
        sp = lambda x: f"{x['median_ms'] / ms:.2f}" if x else "-"  # noqa: E731
        err = r["rel_err"]
        lines.append(
            f"| {r['model']} | {r['T']} | {r['routing']} | {ms:.3f} | {r['tflops']:.0f} | {r['gbps']:.0f} | {r['efficiency']:.2f} | "
            f"{f(g)} | {sp(g)} | {f(lp)} | {sp(lp)} | {f(r['dense'])} | {v if v else '-'} | "
            f"{(f'{v / ms:.2f}' if v else '-')} | {('-' if err != err else f'{err:.1e}')} |")
    plot(d, name)
    lines += ["", f"![efficiency vs T]({'img/' + name + '.png'})"]
    return "\n".join(lines)


def layer_section() -> str | None:
    d = _load("bench_moe_layer")
    if not d:
        return None
    lines = [_stamp(d), "", "Summary: " + ", ".join(f"{k} = {v:.3f}" for k, v in d.get("summary", {}).items()) + ".", "",
             "| model | T | ours, graph ms | ours, eager ms | our two GEMMs ms | layer / GEMMs | transformers eager ms | "
             "_grouped_mm layer, graph ms | eager ms | speedup vs _grouped_mm (graph) | rel. err vs transformers |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in d["rows"]:
        m = lambda k: f"{r[k]['median_ms']:.3f}"  # noqa: E731
        lines.append(f"| {r['model']} | {r['T']} | {m('ours_graph')} | {m('ours_eager')} | {m('gemms')} | "
                     f"{r['layer_over_gemms']:.2f} | {m('hf_eager')} | {m('gmm_graph')} | {m('gmm_eager')} | "
                     f"{r['speedup_vs_grouped_mm_graph']:.2f} | {r['rel_err_vs_hf']:.1e} |")
    layer_plot(d)
    lines += ["", "![layer speedups vs T](img/bench_moe_layer.png)"]
    return "\n".join(lines)


def layer_plot(d: dict) -> None:
    """Per model: our layer (CUDA graph) against the peers, as speedups over T."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in d["rows"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 3.6), sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models):
        rs = [r for r in d["rows"] if r["model"] == model]
        ts = [r["T"] for r in rs]
        ours = [r["ours_graph"]["median_ms"] for r in rs]
        ax.plot(ts, [r["gmm_graph"]["median_ms"] / o for r, o in zip(rs, ours)], "-o", label="over _grouped_mm layer (graph)")
        ax.plot(ts, [r["hf_eager"]["median_ms"] / o for r, o in zip(rs, ours)], "--s", label="over transformers block (eager)")
        ax.plot(ts, [r["gemms"]["median_ms"] / o for r, o in zip(rs, ours)], ":x", label="our two GEMMs / our layer")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.axhline(1.0, color="grey", lw=0.5)
        ax.set_title(model)
        ax.set_xlabel("tokens T")
    axes[0][0].set_ylabel("ratio (higher: ours faster)")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    IMG.mkdir(parents=True, exist_ok=True)
    fig.savefig(IMG / "bench_moe_layer.png", dpi=110)


def plot(d: dict, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in d["rows"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 3.6), sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models):
        for routing, style in (("uniform", "-o"), ("skewed", "--s")):
            rs = [r for r in d["rows"] if r["model"] == model and r["routing"] == routing]
            if rs:
                ax.plot([r["T"] for r in rs], [r["efficiency"] for r in rs], style, label=f"staticbatch ({routing})")
        rs = [r for r in d["rows"] if r["model"] == model and r["routing"] == "uniform" and r.get("grouped_mm")]
        if rs:
            ax.plot([r["T"] for r in rs], [r["floor_ms"] / r["grouped_mm"]["median_ms"] for r in rs], "-^",
                    label="torch._grouped_mm")
        rs = [r for r in d["rows"] if r["model"] == model and r["routing"] == "uniform" and r.get("vllm_gpu_md_ms")]
        if rs:
            ax.plot([r["T"] for r in rs], [r["floor_ms"] / r["vllm_gpu_md_ms"] for r in rs], ":x",
                    label="vLLM Triton (GPU.md figures)")
        ax.set_xscale("log", base=2)
        ax.set_title(model)
        ax.set_xlabel("tokens T")
        ax.axhline(0.85, color="grey", lw=0.5)
        ax.set_ylim(0, 1.05)
    axes[0][0].set_ylabel("roofline efficiency")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    IMG.mkdir(parents=True, exist_ok=True)
    fig.savefig(IMG / f"{name}.png", dpi=110)


def replace(text: str, name: str, body: str | None) -> str:
    if body is None:
        return text
    pat = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", re.S)
    if not pat.search(text):
        raise SystemExit(f"docs/performance.md has no markers for {name}")
    return pat.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def main() -> int:
    text = DOC.read_text()
    text = replace(text, "bench_mapper", mapper_section())
    text = replace(text, "bench_grouped_gemm", gemm_section())
    text = replace(text, "bench_moe_layer", layer_section())
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
