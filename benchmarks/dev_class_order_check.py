"""The order of a call's tile-class launches under skewed routing (dev check on the H200, not a
test).

At T = 4096 the heuristic launches its classes hottest first: 128-row clustered tiles for the
experts of more than 320 rows (compute-bound), then 64-row ping-pong tiles, then the fitted swap
tiles of the experts of at most 160 rows (weight streaming). The skewed points there are 16 %
slower than the uniform ones (floor: 15 %). This times each GEMM with the classes in that order
(``shipped``), reversed, and with the streaming class first and the hot one second. Every
variant passes its classes explicitly, so every launch after the first is a programmatic
dependent of the one before (the same in all three). Outputs are compared bit for bit.
Result: benchmarks/results/dev_class_order_check.json.

Run::

    PYTHONPATH=. python benchmarks/dev_class_order_check.py [MODEL:T:ROUTING ...]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import class_variants_main

POINTS = [("DeepSeek-V3", 4096, "skewed"), ("GPT-OSS-120B", 4096, "skewed"), ("Qwen3-235B-A22B", 4096, "skewed"),
          ("DeepSeek-V3", 4096, "uniform"), ("GPT-OSS-120B", 4096, "uniform")]


def variants(classes):  # type: ignore[no-untyped-def]
    out = {"shipped": classes, "reversed": classes[::-1]}
    if len(classes) == 3:
        out["cold_hot_mid"] = (classes[2], classes[0], classes[1])
    return out


if __name__ == "__main__":
    class_variants_main("dev_class_order_check", POINTS, variants, sys.argv[1:])
