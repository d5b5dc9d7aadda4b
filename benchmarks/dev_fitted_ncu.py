"""ncu of the fitted 128- and 256-token tiles on an exact routing (dev probe on the H200, not a
test): DeepSeek-V3's down GEMM at T = 4096, 128 rows per expert, so both tiles have N = 128.
Result: benchmarks/results/dev_fitted_ncu.txt.

Run::

    ncu --clock-control none -k regex:"sb_grouped_gemm_bf16_bm(128|256)_bn128_s[46]_swap$" \
        --launch-skip 2 --launch-count 4 --section SpeedOfLight --section MemoryWorkloadAnalysis \
        --section WarpStateStats --section Occupancy python3 benchmarks/dev_fitted_ncu.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import exact_routing, layer_weights

import staticbatch_moe as moe
from staticbatch_moe._gemm_config import fitted_config

h, i, e, k = moe.MODEL_SHAPES["DeepSeek-V3"]
t = 4096
torch.manual_seed(0)
w1, w2 = layer_weights(h, i, e)
plan = moe.route_plan(exact_routing(t, e, k), e)
mid = torch.randn(t * k, i, device="cuda", dtype=torch.bfloat16)
out = torch.empty(t * k, h, device="cuda", dtype=torch.bfloat16)
for bm in (128, 256):
    cfg = fitted_config(bm, None, "bf16", False)
    for _ in range(3):
        moe.grouped_gemm(mid, w2, plan, gather=False, out=out, config=cfg)
torch.cuda.synchronize()
