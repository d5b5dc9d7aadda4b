"""The routing kernels (select, plan, combine): they compile (nvrtc tier) and match the torch
paths on the H200 (sm90 tier), exactly where the result is discrete."""

from __future__ import annotations

import pytest
import torch
from moe_cases import rel_err, uniform_ids

import staticbatch as sb
import staticbatch_moe as moe
from staticbatch_moe import _route_kernels as rk
from staticbatch_moe.layer import _select_experts_torch
from staticbatch_moe.routing import _route_plan_torch


@pytest.mark.nvrtc
def test_every_routing_kernel_compiles() -> None:
    sources = rk.all_sources()
    assert len({name for _, name in sources}) == len(sources) >= 20
    for compiled in sb.compile_many(sources):
        assert compiled.cubin[:4] == b"\x7fELF"


def test_chunking_covers_every_entry_and_fits_the_scan() -> None:
    for n in (1, 255, 256, 257, 4096, 131072, 10**7):
        for e in (1, 8, 128, 384, 1024):
            chunk, chunks = rk.chunking(n, e)
            assert chunk % (32 * rk.ROUTE_WARPS) == 0
            assert (chunks - 1) * chunk < n <= chunks * chunk
            assert chunks * e <= max(rk._SCAN_CELLS, e)


def _same_choice(ids: torch.Tensor, rids: torch.Tensor, w: torch.Tensor, rw: torch.Tensor) -> None:
    """Ids equal except where two scores are within rounding (then the weights still agree)."""
    assert ids.dtype == torch.int32 and w.dtype == torch.float32 and ids.shape == rids.shape
    if ids.numel():
        assert (ids == rids).all(dim=1).float().mean().item() >= 0.999
    assert torch.allclose(w, rw, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("e,k", [(8, 2), (60, 4), (128, 8), (256, 8), (384, 6), (1024, 1), (3, 3)])
@pytest.mark.parametrize("scoring", ["softmax", "sigmoid", "softmax_selected"])
@pytest.mark.parametrize("t", [0, 1, 37, 3000])
@pytest.mark.gpu
@pytest.mark.sm90
def test_select_matches_torch(e: int, k: int, scoring: str, t: int) -> None:
    g = torch.Generator(device="cuda").manual_seed(e * 131 + t)
    logits = torch.randn(t, e, device="cuda", generator=g)
    bias = torch.randn(e, device="cuda", generator=g) * 0.1 if scoring == "sigmoid" else None
    for renorm in (True, False):
        w, ids = moe.select_experts(logits, k, scoring=scoring, renormalize=renorm, e_score_correction_bias=bias,
                                    routed_scaling_factor=2.5)
        rw, rids = _select_experts_torch(logits, k, scoring, renorm, None, None, bias, 2.5)
        assert ids.shape == (t, k)
        _same_choice(ids, rids, w, rw)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.gpu
@pytest.mark.sm90
def test_select_half_logits_picks_the_same_scores(dtype: torch.dtype) -> None:
    # Half-precision logits tie often; compare the chosen scores, not the ids.
    logits = torch.randn(2000, 128, device="cuda").to(dtype)
    w, ids = moe.select_experts(logits, 8)
    rw, rids = _select_experts_torch(logits, 8, "softmax", True, None, None, None, 1.0)
    chosen = logits.float().gather(1, ids.long()).sort(dim=1).values
    expected = logits.float().gather(1, rids.long()).sort(dim=1).values
    assert torch.equal(chosen, expected)
    assert torch.allclose(w.sort(dim=1).values, rw.sort(dim=1).values, rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.sm90
def test_select_grouped_deepseek() -> None:
    g = torch.Generator(device="cuda").manual_seed(3)
    logits = torch.randn(513, 256, device="cuda", generator=g)
    bias = torch.randn(256, device="cuda", generator=g) * 0.1
    for b in (bias, None):
        args = dict(scoring="sigmoid", num_expert_group=8, topk_group=4, e_score_correction_bias=b,
                    routed_scaling_factor=2.5)
        w, ids = moe.select_experts(logits, 8, **args)
        rw, rids = _select_experts_torch(logits, 8, "sigmoid", True, 8, 4, b, 2.5)
        _same_choice(ids, rids, w, rw)


@pytest.mark.gpu
@pytest.mark.sm90
def test_select_ties_go_to_the_lower_expert() -> None:
    logits = torch.zeros(4, 64, device="cuda")
    logits[:, 40:] = 1.0
    _, ids = moe.select_experts(logits, 6)
    assert ids.tolist() == [[40, 41, 42, 43, 44, 45]] * 4


def _same_plan(got: moe.RoutePlan, ref: moe.RoutePlan) -> None:
    for name in ("expert_counts", "expert_starts", "slot_to_row", "task_expert", "task_rows", "task_starts"):
        assert torch.equal(getattr(got, name), getattr(ref, name)), name
    m = int(ref.expert_starts[-1])
    assert torch.equal(got.gather_idx[:m], ref.gather_idx[:m])


@pytest.mark.parametrize("t,e,k", [(1, 8, 2), (1, 256, 8), (100, 1, 1), (256, 128, 8), (257, 128, 8), (4096, 128, 8),
                                   (20000, 384, 8), (3, 1024, 1), (1500, 1024, 1), (16384, 8, 2), (70000, 1024, 2)])
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
@pytest.mark.gpu
@pytest.mark.sm90
def test_plan_kernels_match_torch(t: int, e: int, k: int, dtype: torch.dtype) -> None:
    g = torch.Generator(device="cuda").manual_seed(t + e)
    ids = uniform_ids(t, e, k, generator=g).to(dtype)
    if t > 10:  # skipped slots: -1 (not on this rank) and ids past E
        ids[::7, 0] = -1
        ids[::11, -1] = e + 3
    # Four tilings in the routing pass, two of them tile classes (row ranges).
    tilings = [(128, 256, 4096), (64, 128, 200), (64, 256, 1024, 1, (64, None)), (16, 128, 512, 2, (0, 64))]
    got = moe.route_plan(ids, e, tilings=tilings)
    _same_plan(got, _route_plan_torch(ids, e))
    assert all(got.has_tile_offsets(*tl) for tl in tilings)
    for bm, bn, n in ((128, 256, 4096), (64, 128, 200), (16, 64, 96)):
        sizes = torch.stack([got.task_rows, torch.full_like(got.task_rows, n)], dim=1)
        expected = sb.device_plan(sizes, (bm, bn)).tile_offsets
        assert torch.equal(got.tile_offsets(bm, bn, n), expected)
    rows = got.task_rows.tolist()
    for bm, bn, n, split, (lo, hi) in tilings[2:]:
        want = [0]
        for m in rows:
            want.append(want[-1] + (-(-m // bm) * -(-n // bn) * split if lo < m and (hi is None or m <= hi) else 0))
        assert got.tile_offsets(bm, bn, n, split, (lo, hi)).tolist() == want


@pytest.mark.parametrize("t", [300, 5000])  # the one-block kernel and the count / scan / scatter chain
@pytest.mark.gpu
@pytest.mark.sm90
def test_plan_kernels_all_on_one_expert_and_cuda_graph(t: int) -> None:
    ids = torch.full((t, 4), 0, dtype=torch.int32, device="cuda")
    ids[:, 1:] = torch.arange(1, 4, device="cuda", dtype=torch.int32)
    _same_plan(moe.route_plan(ids, 16), _route_plan_torch(ids, 16))
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        plan = moe.route_plan(ids, 16, tilings=[(64, 64, 64)])
    for seed in range(3):
        ids.copy_(uniform_ids(t, 16, 4, generator=torch.Generator(device="cuda").manual_seed(seed)))
        graph.replay()
        _same_plan(plan, _route_plan_torch(ids, 16))
        sizes = torch.stack([plan.task_rows, torch.full_like(plan.task_rows, 64)], dim=1)
        assert torch.equal(plan.tile_offsets(64, 64, 64), sb.device_plan(sizes, (64, 64)).tile_offsets)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.gpu
@pytest.mark.sm90
def test_combine_kernel_matches_torch(dtype: torch.dtype, with_bias: bool) -> None:
    t, k, e, h = 777, 4, 16, 2880
    ids = uniform_ids(t, e, k)
    ids[::5, 2] = -1
    plan = moe.route_plan(ids, e)
    y = torch.randn(t * k, h, device="cuda", dtype=dtype)
    w = torch.rand(t, k, device="cuda")
    bias = torch.randn(e, h, device="cuda", dtype=dtype) if with_bias else None
    kw = dict(bias=bias, topk_ids=ids) if with_bias else {}
    ref_rows = y.float()[plan.slot_to_row.long().clamp(min=0)]
    if with_bias:
        ref_rows = ref_rows + bias.float()[ids.long().clamp(min=0)]
    ref = (ref_rows * torch.where(plan.slot_to_row >= 0, w, 0.0).unsqueeze(-1)).sum(1)
    out = torch.full((t, h), float("nan"), device="cuda", dtype=dtype)
    got = moe.combine(y, plan.slot_to_row, w, out=out, **kw)
    assert got is out and rel_err(got, ref) < 1e-2
    out32 = torch.full((t, h), float("nan"), device="cuda")
    assert rel_err(moe.combine(y, plan.slot_to_row, w, out=out32, **kw), ref) < 1e-6
    assert torch.equal(moe.combine(y, plan.slot_to_row, w, **kw), moe.combine(y, plan.slot_to_row, w, **kw))
