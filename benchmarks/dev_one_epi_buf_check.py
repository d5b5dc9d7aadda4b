"""One epilogue staging buffer per consumer, and the ring stage it makes room for (dev check on the
H200, not a test).

dev_ring_depth_check.json found the 40 KB-stage tiles of the co-limited points 3-26 % slower with
3 stages than with 4 (Mixtral-8x7B T = 1024 down +26 %, Qwen3-30B-A3B T = 4096 +12-13 %). A fifth
stage does not fit beside two staging buffers per consumer; with one (GemmConfig.one_epi_buf,
a second named barrier per 64-column output chunk) it does. Variants of each GEMM's heuristic
classes, applied to its normal-mode classes without store warps whose ring one buffer deepens:

- ``e1``: one buffer, the same stages (the cost of the extra barrier);
- ``e1s5``: one buffer and the deeper ring (``with_one_epi_buf``);
- ``classes``: where a GEMM has several classes, the heuristic's classes passed explicitly,
  launched as the variants are (the reference for them there).

Each GEMM alone on tiled weights (explicit classes: one launch after the other, also where the
heuristic would run concurrent classes), five interleaved repeats of a median of 10 replays, L2
read-flushed, bit-identical outputs required. Result: benchmarks/results/dev_one_epi_buf_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_one_epi_buf_check.py [--points Model:T:routing,...]
"""
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import heuristic_variants_main, layer_classes

from staticbatch_moe._gemm_config import with_one_epi_buf

MODELS = ("Mixtral-8x7B", "Qwen3-30B-A3B", "DeepSeek-V3", "Qwen3-235B-A22B", "GPT-OSS-120B")
POINTS = [(m, t, "uniform") for t in (1024, 4096, 16384) for m in MODELS]
POINTS += [("Qwen3-30B-A3B", 4096, "skewed"), ("Mixtral-8x7B", 1024, "skewed")]


def _deepened(cfg):  # type: ignore[no-untyped-def]
    """The configuration with one buffer and the deeper ring, or None where it gains no stage."""
    if cfg.swap_ab or cfg.store_warps:
        return None
    deeper = with_one_epi_buf(cfg)
    return deeper if deeper.stages > cfg.stages else None


def variant_classes(classes: tuple) -> dict[str, tuple]:
    """``e1`` and ``e1s5`` of one GEMM's heuristic classes (nothing if no class gains a stage)."""
    if all(_deepened(c.config) is None for c in classes):
        return {}
    # Several classes: also the classes as they are, launched the same way (one after the other,
    # no dynamic fitted tiles), the reference for the two variants.
    out = {"classes": classes} if len(classes) > 1 else {}
    for name, same_stages in (("e1", True), ("e1s5", False)):
        new = []
        for c in classes:
            d = _deepened(c.config)
            if d is not None and same_stages:
                d = dataclasses.replace(d, stages=c.config.stages)
            new.append(c if d is None else dataclasses.replace(c, config=d))
        out[name] = tuple(new)
    return out


def variants(model: str, t: int, gemm: str, plain, tiled) -> dict:  # type: ignore[no-untyped-def]
    out = {"heuristic": (tiled, None, None)}
    for name, classes in variant_classes(layer_classes(model, t, tiled_w=True)[gemm]).items():
        out[name] = (tiled, classes, None)
    return out


def main() -> int:
    cfgs = [c.config for m, t, _ in POINTS for cl in layer_classes(m, t, tiled_w=True).values()
            for v in variant_classes(cl).values() for c in v]
    return heuristic_variants_main("dev_one_epi_buf_check", POINTS, variants, cfgs,
                                   "each GEMM alone, tiled weights: the heuristic's normal-mode classes without "
                                   "store warps with one staging buffer per consumer, the same stages (e1) and one "
                                   "more (e1s5); ms, five interleaved repeats")


if __name__ == "__main__":
    sys.exit(main())
