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
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import add_tiled_over_plain, hopper_points, normal_candidate, plain_and_tiled, save, time_gemm_variants

POINTS = [("GPT-OSS-120B", 6144, "uniform"), ("Qwen3-235B-A22B", 4096, "uniform"), ("DeepSeek-V3", 4096, "uniform")]
# (block_m, block_n, pingpong, cluster)
CANDIDATES = [(64, 192, True, 1), (64, 256, True, 1), (64, 128, True, 1), (128, 192, True, 2)]


def variants(model: str, t: int, gemm: str, plain, tiled) -> dict:  # type: ignore[no-untyped-def]
    """Every candidate on plain and on tiled weights, named by kernel."""
    return plain_and_tiled([normal_candidate(*c, gemm == "up", False) for c in CANDIDATES], plain, tiled)


def main() -> int:
    points = hopper_points("dev_pp_tiled_check", POINTS)
    if points is None:
        return 0
    cfgs = [normal_candidate(*c, up, tw) for c in CANDIDATES for up in (False, True) for tw in (False, True)]
    rows = time_gemm_variants(points, variants, configs=cfgs)
    add_tiled_over_plain(rows)
    save("dev_pp_tiled_check", rows, {"note": "each GEMM alone, one configuration for every expert, plain and "
                                      "tiled weights; ms, three interleaved repeats"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
