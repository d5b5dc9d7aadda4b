"""Grouped GEMM: the reference and CPU path (CPU tier), every shipped kernel configuration
compiling (nvrtc tier), and the Hopper kernel against the float32 reference (sm90 tier)."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from moe_cases import MODELS, rel_err, uniform_ids

import staticbatch as sb
import staticbatch_moe as moe
from staticbatch_moe import _gemm_config as cfgmod

TS = (1, 16, 128, 1024, 4096, 16384)


def _naive(a, w1, ids, gather: bool, silu: bool) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """Row by row, straight from the definition (float64)."""
    p = moe.route_plan(ids, w1.shape[0])
    out = []
    for r in range(int(p.expert_starts[-1])):
        e = int(torch.searchsorted(p.expert_starts, torch.tensor(r), right=True)) - 1
        x = a[int(p.gather_idx[r])] if gather else a[r]
        y = w1[e].double() @ x.double()
        if silu:
            half = y.shape[0] // 2
            y = torch.nn.functional.silu(y[:half]) * y[half:]
        out.append(y)
    return torch.stack(out) if out else torch.zeros(0)


@pytest.mark.parametrize("silu", [False, True])
@pytest.mark.parametrize("gather", [False, True])
def test_reference_matches_definition(gather: bool, silu: bool) -> None:
    torch.manual_seed(0)
    e, t, k, kk, n = 5, 7, 2, 24, 32
    ids = uniform_ids(t, e, k, device="cpu")
    ids[0, 0] = -1
    a = torch.randn(t if gather else t * k, kk, dtype=torch.bfloat16)
    w = torch.randn(e, n, kk, dtype=torch.bfloat16)
    p = moe.route_plan(ids, e)
    wt = moe.pack_gate_up(w) if silu else w
    out = moe.grouped_gemm(a, wt, p, gather=gather, activation="silu_and_mul" if silu else None)  # CPU: reference path
    m = int(p.expert_starts[-1])
    assert rel_err(out[:m], _naive(a, w, ids, gather, silu)) < 1e-2


def test_pack_gate_up_round_trip_and_layout() -> None:
    w = torch.randn(3, 32, 8)
    packed = moe.pack_gate_up(w)
    assert torch.equal(packed.unpack(), w)
    assert torch.equal(packed.packed[:, 8:16], w[:, 16:24])  # up rows 0:8 follow gate rows 0:8


@settings(max_examples=60, deadline=None)
@given(e=st.integers(1, 3), n8=st.integers(1, 20), k8=st.integers(1, 20), bf16=st.booleans(), seed=st.integers(0, 99))
def test_pack_weight_round_trip_and_layout(e: int, n8: int, k8: int, bf16: bool, seed: int) -> None:
    """A tiled weight holds w[e, 64 nb + i, 64 kb + 8 c : + 8] at chunk c ^ (i % 8) of row i of
    block [e, nb, kb], zeros past N and K, and unpacks to w, for N and K any multiple of 8."""
    n, k = 8 * n8, 8 * k8
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(e, n, k, generator=g).to(torch.bfloat16 if bf16 else torch.float16)
    t = moe.pack_weight(w)
    nb, kb = -(-n // 64), -(-k // 64)
    assert tuple(t.tiles.shape) == (e, nb, kb, 64, 64) and t.shape == (e, n, k) and t.dtype == w.dtype
    assert torch.equal(t.unpack(), w)
    padded = torch.zeros(e, nb * 64, kb * 64, dtype=w.dtype)
    padded[:, :n, :k] = w
    for ee, b, c, i, ch in ((e - 1, nb - 1, kb - 1, 63, 7), (0, 0, 0, 5, 2), (e // 2, nb // 2, kb // 2, 10, 3)):
        stored = t.tiles[ee, b, c, i, 8 * (ch ^ (i % 8)):8 * (ch ^ (i % 8)) + 8]
        assert torch.equal(stored, padded[ee, 64 * b + i, 64 * c + 8 * ch:64 * c + 8 * ch + 8])


@pytest.mark.parametrize("gather", [False, True])
def test_tiled_weights_on_the_reference_path(gather: bool) -> None:
    """grouped_gemm, grouped_mlp and pack_gate_up(tiled=True) give what the untiled weights give."""
    torch.manual_seed(1)
    e, t, k, h, i = 5, 9, 2, 72, 24
    ids = uniform_ids(t, e, k, device="cpu")
    p = moe.route_plan(ids, e)
    x = torch.randn(t if gather else p.num_rows, h, dtype=torch.bfloat16)
    w1, w2 = torch.randn(e, 2 * i, h, dtype=torch.bfloat16), torch.randn(e, h, i, dtype=torch.bfloat16)
    assert torch.equal(moe.grouped_gemm(x, moe.pack_weight(w1), p, gather=gather),
                       moe.grouped_gemm(x, w1, p, gather=gather))
    tiled_up = moe.pack_gate_up(w1, tiled=True)
    assert isinstance(tiled_up.packed, moe.TiledWeight) and torch.equal(tiled_up.unpack(), w1)
    assert torch.equal(moe.grouped_gemm(x, tiled_up, p, gather=gather, activation="silu_and_mul"),
                       moe.grouped_gemm(x, moe.pack_gate_up(w1), p, gather=gather, activation="silu_and_mul"))
    if gather:
        assert torch.equal(moe.grouped_mlp(x, tiled_up, moe.pack_weight(w2), p),
                           moe.grouped_mlp(x, moe.pack_gate_up(w1), w2, p))


@pytest.mark.parametrize("chunk_blocks", [1, 2, 3])
def test_pack_weight_in_expert_chunks(monkeypatch: pytest.MonkeyPatch, chunk_blocks: int) -> None:
    """Tiling and untiling run through the experts a chunk at a time; chunks of one expert or of
    several, ending mid-way or on the last expert, give the same tiles as one pass."""
    w = torch.randn(5, 130, 70, dtype=torch.bfloat16)  # 3 x 2 blocks per expert
    whole = moe.pack_weight(w)
    monkeypatch.setattr(cfgmod, "TILING_CHUNK_BYTES", chunk_blocks * 6 * 64 * 64 * 2)
    assert len(cfgmod._expert_chunks(5, 6)) == -(-5 // chunk_blocks)
    chunked = moe.pack_weight(w)
    assert torch.equal(chunked.tiles, whole.tiles) and torch.equal(chunked.unpack(), w)


@pytest.mark.parametrize("activation,bias", [("silu", False), ("silu", True), ("swigluoai", True)])
def test_fused_moe_takes_tiled_weights(activation: str, bias: bool) -> None:
    """fused_moe gives with tiled weights what it gives with the weights as given (reference
    path): the fused SiLU (a tiled GateUpWeight), SiLU with a bias (the unfused pass) and
    GPT-OSS's clamped SwiGLU (a tiled w1 of interleaved rows)."""
    torch.manual_seed(2)
    e, t, k, h, i = 6, 11, 2, 80, 40  # N and K not multiples of 64: the tiles' zero padding is read
    x = torch.randn(t, h, dtype=torch.bfloat16)
    w1, w2 = torch.randn(e, 2 * i, h, dtype=torch.bfloat16) / 9, torch.randn(e, h, i, dtype=torch.bfloat16) / 6
    weights, ids = torch.rand(t, k), uniform_ids(t, e, k, device="cpu")
    b1 = torch.randn(e, 2 * i, dtype=torch.bfloat16) if bias else None
    b2 = torch.randn(e, h, dtype=torch.bfloat16) if bias else None
    kw = {"activation": activation, "w1_bias": b1, "w2_bias": b2}
    plain_w1 = moe.pack_gate_up(w1) if activation == "silu" else w1
    tiled_w1 = moe.pack_gate_up(w1, tiled=True) if activation == "silu" else moe.pack_weight(w1)
    want = moe.fused_moe(x, plain_w1, w2, weights, ids, **kw)
    got = moe.fused_moe(x, tiled_w1, moe.pack_weight(w2), weights, ids, **kw)
    assert torch.isfinite(want).all() and want.abs().sum() > 0
    assert torch.equal(got, want)


def test_tiled_weight_errors_and_config() -> None:
    with pytest.raises(sb.InvalidArgumentError, match="bfloat16 or torch.float16"):
        moe.pack_weight(torch.randn(2, 8, 8))
    with pytest.raises(sb.InvalidArgumentError, match=r"\[E, N, K\]"):
        moe.pack_weight(torch.randn(8, 8, dtype=torch.bfloat16))
    ids = torch.tensor([[0, 1], [2, 3]], dtype=torch.int32)
    p = moe.route_plan(ids, 4)
    x = torch.randn(2, 64, dtype=torch.bfloat16)
    with pytest.raises(sb.InvalidArgumentError, match="num_experts=4"):
        moe.grouped_gemm(x, moe.pack_weight(torch.randn(3, 32, 64, dtype=torch.bfloat16)), p)
    with pytest.raises(sb.InvalidArgumentError, match="K=72 columns"):
        moe.grouped_gemm(x, moe.pack_weight(torch.randn(4, 32, 72, dtype=torch.bfloat16)), p)
    w1 = moe.pack_gate_up(torch.randn(4, 32, 64, dtype=torch.bfloat16), tiled=True)
    w2 = moe.pack_weight(torch.randn(4, 64, 16, dtype=torch.bfloat16))
    with pytest.raises(sb.InvalidArgumentError, match="untiled weights"):
        moe.grouped_mlp(x, w1, w2, p, config=moe.GemmConfig(block_m=8, block_n=64, stages=8, swap_ab=True,
                                                              activation="silu_and_mul", gather=True))
    with pytest.raises(sb.InvalidArgumentError, match=r"`w2` must be a 3-D tensor or a TiledWeight .*\(got Tensor of "
                       r"shape \[64, 16\]\)"):
        moe.fused_moe(x, w1, torch.randn(64, 16, dtype=torch.bfloat16), torch.ones(2, 2), ids)
    cfg = moe.GemmConfig(block_m=8, block_n=128, stages=12, swap_ab=True, tiled_w=True)
    assert cfg.kernel_name.endswith("_wt") and "_wt" not in dataclasses.replace(cfg, tiled_w=False).kernel_name
    assert ",false,true>(" in "".join(cfgmod.kernel_source(cfg).split())  # kDynamic, kTiledW
    with pytest.raises(sb.InvalidArgumentError, match="`tiled_w` must be a bool"):
        moe.GemmConfig(tiled_w=1)  # type: ignore[arg-type]
    # The kernel's w_map for a tiled weight: {address, 64-row blocks per expert}, no tensor map.
    t = moe.pack_weight(torch.randn(2, 200, 64, dtype=torch.bfloat16))
    raw = cfgmod.weight_tma_descriptor(t.tiles, cfg)
    assert len(raw) == 128 and int.from_bytes(raw[8:16], "little") == 4 and raw[16:] == bytes(112)
    with pytest.raises(sb.InvalidArgumentError, match="tiled weight"):
        cfgmod.weight_tma_descriptor(torch.randn(2, 200, 64, dtype=torch.bfloat16), cfg)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"a": torch.randn(4, 16)}, "dtype of `a`"),
        ({"a": torch.randn(4, 16).to(torch.float64)}, "bfloat16 or torch.float16"),
        ({"a": torch.randn(4, 16, dtype=torch.bfloat16).t().contiguous().t()}, "contiguous rows"),
        ({"a": torch.randn(5, 16, dtype=torch.bfloat16)}, "num_tokens=4 rows"),
        ({"a": torch.randn(4, 8, dtype=torch.bfloat16)}, "K=16 columns"),
        ({"w": torch.randn(3, 32, 16, dtype=torch.bfloat16)}, "num_experts=4"),
        ({"w": torch.randn(4, 32, 16, dtype=torch.float16)}, "dtype of `a`"),
        ({"w": torch.randn(4, 16, 32, dtype=torch.bfloat16).transpose(1, 2)}, "contiguous"),
        ({"activation": "gelu"}, "`activation`"),
        ({"activation": "silu_and_mul"}, "GateUpWeight"),
        ({"out": torch.empty(8, 31, dtype=torch.bfloat16)}, r"shape \[8, 32\]"),
        ({"plan": "x"}, "RoutePlan"),
    ],
)
def test_bad_input(kwargs: dict, match: str) -> None:
    ids = torch.tensor([[0, 1], [2, 3], [1, 1], [0, 2]], dtype=torch.int32)
    args = {"a": torch.randn(4, 16, dtype=torch.bfloat16), "w": torch.randn(4, 32, 16, dtype=torch.bfloat16),
            "plan": moe.route_plan(ids, 4)}
    a, w, plan = args.pop("a"), args.pop("w"), args.pop("plan")
    a, w, plan = kwargs.pop("a", a), kwargs.pop("w", w), kwargs.pop("plan", plan)
    with pytest.raises(sb.InvalidArgumentError, match=match):
        moe.grouped_gemm(a, w, plan, **kwargs)


def test_alignment_errors() -> None:
    ids = torch.tensor([[0]], dtype=torch.int32)
    p = moe.route_plan(ids, 1)
    with pytest.raises(sb.InvalidArgumentError, match="multiple of 8"):
        moe.grouped_gemm(torch.randn(1, 12, dtype=torch.bfloat16), torch.randn(1, 16, 12, dtype=torch.bfloat16), p)
    with pytest.raises(sb.InvalidArgumentError, match="multiple of 8"):
        moe.grouped_gemm(torch.randn(1, 16, dtype=torch.bfloat16), torch.randn(1, 12, 16, dtype=torch.bfloat16), p)


@pytest.mark.parametrize("model", list(MODELS))
def test_heuristic_configs_are_valid(model: str) -> None:
    h, i, e, k = MODELS[model]
    for t in TS:
        for n, kk, act, gather in ((2 * i, h, "silu_and_mul", True), (h, i, None, False)):
            cfg = moe.choose_config(t * k, e, n, kk, "bf16", act, gather)
            assert cfg.activation == act and cfg.gather == gather
            assert cfgmod.shared_bytes(cfg) <= cfgmod.MAX_SHARED_BYTES


def _shipped_configs() -> list[cfgmod.GemmConfig]:
    """Every configuration the heuristic picks for the benchmark grid (each tile class), in both
    dtypes, plus the alternatives the sweep may time."""
    found: set[cfgmod.GemmConfig] = set()
    candidates = getattr(cfgmod, "candidate_configs", None)
    for (h, i, e, k), t, dtype in itertools.product(MODELS.values(), TS, ("bf16", "fp16")):
        for n, kk, act, gather in ((2 * i, h, "silu_and_mul", True), (h, i, None, False), (h, i, None, True)):
            cfg = moe.choose_config(t * k, e, n, kk, dtype, act, gather)
            found.add(cfg)
            classes = moe.choose_tile_classes(t * k, e, n, kk, dtype, act, gather, num_tokens=t)
            found.update(c.config for c in classes)
            found.update(c.config for c in cfgmod.launch_classes(classes)[0])  # dynamic fitted tiles
            if gather:  # the cp.async gather stays selectable
                found.add(cfg.with_gather_mode("cp_async"))
            if candidates is not None and dtype == "bf16":
                found.update(candidates(t * k, e, n, kk, dtype, act, gather))
    return sorted(found, key=lambda c: c.kernel_name)


@pytest.mark.nvrtc
def test_tiled_weight_configs_compile() -> None:
    """The heuristic's tile classes at the benchmark grid with tiled weights (bf16): whole
    64-row blocks, and clusters whose 96-row halves are not (each CTA copies the whole tile)."""
    found = {c.config for (h, i, e, k), t in itertools.product(MODELS.values(), TS)
             for n, kk, act, gather in ((2 * i, h, "silu_and_mul", True), (h, i, None, False))
             for c in cfgmod.launch_classes(moe.choose_tile_classes(t * k, e, n, kk, "bf16", act, gather,
                                                                    num_tokens=t, tiled_w=True))[0]}
    assert all(c.tiled_w for c in found) and any(c.dynamic and c.swap_ab for c in found)
    assert any(c.block_n // c.cluster == 96 for c in found)
    for cfg in sorted(found, key=lambda c: c.kernel_name):
        compiled = sb.compile_source(cfgmod.kernel_source(cfg), cfg.kernel_name, arch="sm_90a",
                                     options=("--ptxas-options=-v",))
        _assert_clean_cubin(cfg.kernel_name, compiled)


@pytest.mark.nvrtc
def test_every_shipped_config_compiles() -> None:
    configs = _shipped_configs()
    assert len(configs) >= 10
    for cfg in configs:
        compiled = sb.compile_source(cfgmod.kernel_source(cfg), cfg.kernel_name, arch="sm_90a",
                                     options=("--ptxas-options=-v",))
        _assert_clean_cubin(cfg.kernel_name, compiled)


def _assert_clean_cubin(name: str, compiled) -> None:  # type: ignore[no-untyped-def]
    """A cubin, and where it was compiled fresh (its ptxas report is there) no spills and no
    serialised wgmmas (C7514: accumulators read by ordinary instructions while a wgmma may be in
    flight)."""
    assert compiled.cubin[:4] == b"\x7fELF"
    if compiled.log:
        assert " 0 bytes spill stores" in compiled.log, (name, compiled.log)
        assert "C7514" not in compiled.log, (name, compiled.log)


def test_gather_mode() -> None:
    """cp.async is the default gather, staged the heuristic's pick for large experts; every
    method gets its own kernel name and template arguments; misuse is an error."""
    cpa = cfgmod.GemmConfig(gather=True)
    tma = cfgmod.GemmConfig(gather=True, gather_mode="tma")
    stg = cfgmod.GemmConfig(gather=True, gather_mode="staged")
    assert cpa.gather_mode == "cp_async"
    assert moe.choose_config(64, 8, 512, 256, gather=True).gather_mode == "cp_async"  # swap mode (8 rows per expert)
    assert moe.choose_config(512, 8, 512, 256, gather=True).gather_mode == "staged"  # normal mode (64 rows)
    assert moe.choose_config(4096, 8, 512, 256, gather=False).gather_mode == "cp_async"  # (unused without gather)
    assert len({tma.kernel_name, cpa.kernel_name, stg.kernel_name, cfgmod.GemmConfig().kernel_name}) == 4
    squash = lambda c: "".join(cfgmod.kernel_source(c).split())  # noqa: E731
    # ..., kGather, kSiluMul, kPingpong, kTmaGather, kSplitK, kStaged, kCluster
    assert "true,false,false,true,1,false,1,false>(" in squash(tma)
    assert "true,false,false,false,1,false,1,false>(" in squash(cpa)
    assert "false,false,false,false,1,true,1,false>(" in squash(stg)  # the staged kernel runs without gather
    with pytest.raises(sb.InvalidArgumentError, match="gather_mode"):
        cfgmod.GemmConfig(gather_mode="dma")
    with pytest.raises(sb.InvalidArgumentError, match="only with gather=True"):
        cfgmod.GemmConfig(gather_mode="tma")
    with pytest.raises(sb.InvalidArgumentError, match="staged.*normal mode"):
        cfgmod.GemmConfig(block_m=16, block_n=128, stages=4, swap_ab=True, gather=True, gather_mode="staged")
    with pytest.raises(sb.InvalidArgumentError, match="staged.*split-K"):
        cfgmod.GemmConfig(block_m=16, block_n=128, stages=4, swap_ab=True, gather=True, gather_mode="staged",
                          split_k=2)


def test_fitted_swap_config() -> None:
    """Swap mode with 128-256 tokens (FITTED_SIZES) is a fitted tile: 32-row token boxes (16 where 32 does not
    divide the size: 144, 176), at most 64 tokens per
    staging buffer (so the ring still fits), the staged gather allowed; other sizes, split-K and
    the one-launch MLP are errors that name the argument."""
    for bm, stages in ((128, 6), (160, 5), (256, 4)):
        cfg = cfgmod.GemmConfig(block_m=bm, block_n=128, stages=cfgmod._max_stages(bm, 128, 12, swap_ab=True),
                                swap_ab=True, activation="silu_and_mul", gather=True, gather_mode="staged")
        assert cfg.stages == stages and cfgmod.is_fitted(cfg) and cfgmod._token_box_rows(cfg) == 32
        assert cfgmod.shared_bytes(cfg) <= cfgmod.MAX_SHARED_BYTES
        assert cfg.kernel_name == f"sb_grouped_gemm_bf16_bm{bm}_bn128_s{stages}_swap_gstg_silu"
        assert f"GemmShape<{bm},128,{stages},true,false,2>" in "".join(cfgmod.kernel_source(cfg).split())
        assert cfgmod.tiles_per_task(bm + 1, 320, cfg) == 2 * 3
    for bm in (144, 176):
        cfg = cfgmod.GemmConfig(block_m=bm, block_n=128, stages=4, swap_ab=True)
        assert cfgmod.is_fitted(cfg) and cfgmod._token_box_rows(cfg) == cfgmod.FITTED_N_STEP == 16
    plain = cfgmod.GemmConfig(block_m=64, block_n=128, stages=8, swap_ab=True)
    assert not cfgmod.is_fitted(plain) and cfgmod._token_box_rows(plain) == 64
    with pytest.raises(sb.InvalidArgumentError, match=r"`block_m` must be 8, 16, 32, 48, 64 or a fitted size \(128, "):
        cfgmod.GemmConfig(block_m=96, block_n=128, stages=4, swap_ab=True)
    with pytest.raises(sb.InvalidArgumentError, match="`split_k` > 1 needs block_m <= 64"):
        cfgmod.GemmConfig(block_m=128, block_n=128, stages=4, swap_ab=True, split_k=2)
    with pytest.raises(sb.InvalidArgumentError, match="at most 64 tokens"):
        cfgmod.check_mlp_config(cfgmod.GemmConfig(block_m=128, block_n=128, stages=4, swap_ab=True))


@pytest.mark.nvrtc
def test_fitted_swap_configs_compile_without_spills() -> None:
    from moe_cases import fitted_configs

    configs = fitted_configs()
    compiled = sb.compile_many([(cfgmod.kernel_source(c), c.kernel_name) for c in configs],
                               options=("--ptxas-options=-v",))
    for cfg, comp in zip(configs, compiled):
        _assert_clean_cubin(cfg.kernel_name, comp)


def test_cluster_config() -> None:
    """cluster=2: its own kernel name, the compile-time cluster shape, the template argument;
    what it cannot combine with is an error that names the argument."""
    c2 = cfgmod.GemmConfig(block_m=128, block_n=256, stages=4, cluster=2)
    assert c2.kernel_name == cfgmod.GemmConfig(block_m=128, block_n=256, stages=4).kernel_name + "_c2"
    src = cfgmod.kernel_source(c2)
    assert "__cluster_dims__(2, 1, 1)" in src and "__cluster_dims__" not in cfgmod.kernel_source(cfgmod.GemmConfig())
    assert "false,false,false,false,1,false,2,false>(" in "".join(src.split())
    staged = cfgmod.GemmConfig(block_m=64, block_n=256, pingpong=True, gather=True, gather_mode="staged", cluster=2)
    assert staged.kernel_name.endswith("_pp_gstg_c2")
    for bad in (dict(cluster=3), dict(cluster=0), dict(cluster=True)):
        with pytest.raises(sb.InvalidArgumentError, match="`cluster` must be 1 or 2"):
            cfgmod.GemmConfig(**bad)
    for bad in (dict(block_m=16, block_n=128, swap_ab=True), dict(block_m=256, block_n=128),
                dict(gather=True), dict(gather=True, gather_mode="tma")):
        with pytest.raises(sb.InvalidArgumentError, match="`cluster=2` needs normal mode"):
            cfgmod.GemmConfig(stages=4, cluster=2, **bad)


def test_dynamic_config() -> None:
    """dynamic=True: its own kernel name and template argument, no extra shared memory (the tile
    ring fits the barriers' padding); what it cannot combine with is an error that names it."""
    base = cfgmod.with_store_warps(cfgmod.GemmConfig(block_m=128, block_n=256, stages=4, cluster=2,
                                                     activation="silu_and_mul", gather=True, gather_mode="staged"))
    dyn = dataclasses.replace(base, dynamic=True)
    assert dyn.kernel_name == base.kernel_name + "_dyn"
    assert "2,true,true>(" in "".join(cfgmod.kernel_source(dyn).split())
    assert "2,true>(" in "".join(cfgmod.kernel_source(base).split())
    assert cfgmod.shared_bytes(dyn) == cfgmod.shared_bytes(base)
    assert dyn.with_gather_mode("staged").dynamic and not dyn.with_gather_mode("cp_async").dynamic
    assert not dyn.with_gather_mode("tma").dynamic
    with pytest.raises(sb.InvalidArgumentError, match="`dynamic` must be a bool"):
        cfgmod.GemmConfig(dynamic=1)
    for bad in (dict(block_m=64, pingpong=True), dict(block_m=64), dict(block_m=128, pingpong=True, block_n=192),
                dict(block_m=16, block_n=128, swap_ab=True, gather=True), dict(gather=True),
                dict(block_m=16, block_n=128, swap_ab=True, split_k=2), dict(block_m=256, block_n=128)):
        with pytest.raises(sb.InvalidArgumentError, match="`dynamic=True` needs normal mode, block_m=128"):
            cfgmod.GemmConfig(**{"block_n": 256, "stages": 4, **bad, "dynamic": True})
    # Swap-mode tiles take dynamic tiles without an in-loop gather (fitted tiles, concurrent classes).
    fitted = cfgmod.fitted_config(160, "silu_and_mul", "bf16", True)
    assert fitted.gather_mode == "staged" and cfgmod.with_dynamic_fitted(fitted).dynamic
    assert cfgmod.with_dynamic_fitted(fitted).kernel_name == fitted.kernel_name.replace("_silu", "_silu_dyn")
    assert cfgmod.with_dynamic_fitted(fitted.with_gather_mode("cp_async")) == fitted.with_gather_mode("cp_async")
    small = cfgmod.GemmConfig(block_m=16, block_n=128, swap_ab=True, stages=12)
    assert cfgmod.with_dynamic_fitted(small) == small  # not fitted: static order
    assert dataclasses.replace(small, dynamic=True).dynamic


def test_store_warps_config() -> None:
    """store_warps=True: its own kernel name and template argument, a staging buffer per 64
    output columns (so a 256-wide tile without activation gets a stage less), kept by the
    staged gather only; what it cannot combine with is an error that names the argument."""
    down = cfgmod.with_store_warps(cfgmod.GemmConfig(block_m=128, block_n=256, stages=4, cluster=2))
    assert down.store_warps and down.stages == 3 and down.kernel_name.endswith("_c2_sw")
    assert "false,false,false,false,1,false,2,true>(" in "".join(cfgmod.kernel_source(down).split())
    assert "GemmShape<128,256,3,false,false,4>" in "".join(cfgmod.kernel_source(down).split())
    assert cfgmod.shared_bytes(down) <= cfgmod.MAX_SHARED_BYTES
    assert cfgmod.shared_bytes(down) - cfgmod.shared_bytes(dataclasses.replace(down, store_warps=False)) == 2 * 2 * 8192
    up = cfgmod.with_store_warps(cfgmod.GemmConfig(block_m=128, block_n=256, stages=4, activation="silu_and_mul",
                                                   gather=True, gather_mode="staged"))
    assert up.stages == 4  # 128 output columns: the two buffers it always had
    assert cfgmod.shared_bytes(up) == cfgmod.shared_bytes(dataclasses.replace(up, store_warps=False))
    assert not up.with_gather_mode("cp_async").store_warps and up.with_gather_mode("staged").store_warps
    gathered = cfgmod.with_store_warps(cfgmod.GemmConfig(block_m=128, block_n=256, gather=True, gather_mode="staged"))
    assert gathered.stages == 3 and gathered.with_gather_mode("cp_async").stages == 4  # the ring deepens again
    with pytest.raises(sb.InvalidArgumentError, match="`store_warps` must be a bool"):
        cfgmod.GemmConfig(store_warps=1)
    for bad in (dict(block_m=16, block_n=128, swap_ab=True), dict(block_m=64, block_n=256, pingpong=True),
                dict(block_m=64, block_n=256), dict(block_m=256, block_n=128), dict(gather=True),
                dict(gather=True, gather_mode="tma")):
        with pytest.raises(sb.InvalidArgumentError, match="`store_warps=True` needs normal mode, block_m=128"):
            cfgmod.GemmConfig(stages=3, store_warps=True, **bad)


def test_heuristic_store_warps(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With the 128-row ping-pong rule off (USE_PINGPONG128), 128-row tiles get store warps with
    silu_and_mul at any K and without it for K <= 4096; 64-row, tall and swap tiles never; the
    sweep list keeps the tile without them. With the rule on, only where it does not apply
    (K > PINGPONG128_MAX_K)."""
    deepseek_up = moe.choose_config(131072, 256, 4096, 7168, "bf16", "silu_and_mul", True)
    assert (deepseek_up.block_m, deepseek_up.pingpong, deepseek_up.store_warps, deepseek_up.stages) == (128, False,
                                                                                                      True, 4)
    monkeypatch.setattr(cfgmod, "USE_PINGPONG128", False)
    cfgmod.choose_config.cache_clear()
    try:
        up = moe.choose_config(131072, 128, 1536, 2048, "bf16", "silu_and_mul", True)
        down = moe.choose_config(131072, 128, 2048, 768, "bf16", None, False)
        mixtral_down = moe.choose_config(32768, 8, 4096, 14336, "bf16", None, False)
        assert (up.block_m, up.store_warps, up.stages) == (128, True, 4)
        assert (down.block_m, down.store_warps, down.stages) == (128, True, 3)
        assert (mixtral_down.block_m, mixtral_down.store_warps, mixtral_down.stages) == (128, False, 4)
        assert moe.choose_config(131072, 8, 28672, 4096, "bf16", "silu_and_mul", True).store_warps
        for small in (moe.choose_config(32768, 128, 2048, 768), moe.choose_config(8, 128, 2048, 768)):
            assert not small.store_warps
        cands = cfgmod.candidate_configs(131072, 128, 2048, 768)
        assert cands[0] == down and dataclasses.replace(down, store_warps=False, stages=4) in cands
    finally:
        cfgmod.choose_config.cache_clear()


def test_heuristic_pingpong128() -> None:
    """128-row tiles in clusters are 128 x 192 ping-pong tiles where the cooperative tile would be
    one of PINGPONG128_WIDTHS and K <= PINGPONG128_MAX_K (the staged gather when gathering, no
    store warps), cooperative tiles otherwise; 64-row tiles stay."""
    limit = cfgmod.PINGPONG128_MAX_K
    for n, k, act, gather in ((2880, 2880, None, False), (5760, 2880, "silu_and_mul", True),
                              (5760, limit, "silu_and_mul", True), (2880, limit + 64, None, False),
                              (4096, 2048, None, False), (3072, 4096, "silu_and_mul", True),
                              (4096, 14336, None, False), (4096, 7168, "silu_and_mul", True)):
        cfg = moe.choose_config(131072, 128, n, k, "bf16", act, gather)
        assert cfg.block_m == 128 and cfg.cluster == 2, (n, k, cfg)
        if k <= limit and cfgmod._wide_tile(n) in cfgmod.PINGPONG128_WIDTHS:
            assert (cfg.pingpong, cfg.block_n, cfg.stages, cfg.store_warps) == (True, 192, 4, False), (n, k, cfg)
        else:
            assert not cfg.pingpong and cfg.block_n == cfgmod._wide_tile(n), (n, k, cfg)
            assert cfg.store_warps == (act is not None or k <= cfgmod.STORE_WARPS_MAX_K), (n, k, cfg)
        assert cfg.gather_mode == ("staged" if gather else "cp_async")
        assert cfgmod.shared_bytes(cfg) <= cfgmod.MAX_SHARED_BYTES
    # The sweep list offers the cooperative tile the rule replaced.
    first, *rest = cfgmod.candidate_configs(131072, 128, 3072, 4096, "bf16", "silu_and_mul", True)
    assert first.pingpong and first.block_m == 128
    assert any(c.block_m == 128 and c.block_n == 256 and c.cluster == 2 and c.store_warps and not c.pingpong
               and c.gather_mode == "staged" for c in rest), rest
    narrow = moe.choose_config(8 * 400, 8, 512, 2048, "bf16", None, False)  # 128 wide fills the SMs better
    assert (narrow.block_m, narrow.block_n, narrow.pingpong) == (128, 128, False)
    assert moe.choose_config(32768, 128, 2048, 768).block_m == 64  # ~256 rows per expert: 64-row tiles


def test_stage_units_by_token_matches_the_kernel() -> None:
    """The host's count of token groups (which decides whether the staged copy goes by token)
    uses the kernel's pieces in flight per lane, kStageUnroll: 16 pieces of 16 bytes."""
    import re

    import staticbatch_moe.gemm as gemm_mod

    header = sb.include_dir() / "staticbatch" / "moe" / "grouped_gemm.cuh"
    unroll = int(re.search(r"constexpr int kStageUnroll = (\d+);", header.read_text()).group(1))
    for k, tokens in ((2048, 4096), (4096, 1000), (7168, 3), (200, 10000), (2880, 1)):
        pieces = k // 8
        group = 1 if pieces >= 32 * unroll else 32 * unroll // pieces
        assert gemm_mod._stage_units_by_token(tokens, k) == -(-tokens // group)


def test_heuristic_without_staged_gather(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With USE_STAGED_GATHER off, a gathered 128-row tile gathers in the loop: no cluster and no
    store warps (both need the producer's warps free), and the heuristic does not raise."""
    monkeypatch.setattr(cfgmod, "USE_STAGED_GATHER", False)
    cfgmod.choose_config.cache_clear()
    try:
        for act in (None, "silu_and_mul"):
            cfg = cfgmod.choose_config(131072, 128, 1536, 2048, "bf16", act, True)
            assert (cfg.block_m, cfg.gather_mode, cfg.cluster, cfg.store_warps) == (128, "cp_async", 1, False)
    finally:
        cfgmod.choose_config.cache_clear()


# ---------------------------------------------------------------------------------------------
# Split-K (swap mode, decode): configuration, tile counting, the heuristic
# ---------------------------------------------------------------------------------------------


def test_split_k_config_validation_and_name() -> None:
    cfg = cfgmod.GemmConfig(block_m=8, block_n=128, stages=12, swap_ab=True, split_k=4, activation="silu_and_mul",
                            gather=True)
    assert cfg.kernel_name == "sb_grouped_gemm_bf16_bm8_bn128_s12_swap_sk4_gcpa_silu"
    assert "_sk" not in cfgmod.GemmConfig(block_m=8, block_n=128, stages=12, swap_ab=True).kernel_name
    assert cfgmod.shared_bytes(cfg) == cfgmod.shared_bytes(cfgmod.GemmConfig(block_m=8, block_n=128, stages=12,
                                                                              swap_ab=True))
    with pytest.raises(sb.InvalidArgumentError, match="swap mode"):
        cfgmod.GemmConfig(block_m=128, block_n=256, split_k=2)
    for bad in (0, 17, 2.0, True):
        with pytest.raises(sb.InvalidArgumentError, match="`split_k`"):
            cfgmod.GemmConfig(block_m=8, block_n=128, stages=12, swap_ab=True, split_k=bad)


def test_split_k_source_passes_the_factor() -> None:
    cfg = cfgmod.GemmConfig(block_m=16, block_n=64, stages=12, swap_ab=True, split_k=3)
    src = cfgmod.kernel_source(cfg)
    # ..., kSiluMul, kPingpong, kTmaGather, kSplitK, kStaged, kCluster; the workspace and counters are passed on
    assert "false, false, false, 3, false, 1, false>(" in "".join(src.split()).replace(",", ", ")
    assert "void* workspace" in src and "unsigned* counters" in src


def _kernel_tiles(counts: list[int], n: int, k: int, cfg: cfgmod.GemmConfig) -> list[tuple[int, int, int, int, int]]:
    """Python twin of the kernel's tile walk: (task, m_block, n_block, k_block0, k_blocks) per tile id."""
    nk = -(-k // 64)
    s = cfg.split_k
    out = []
    for task, m in enumerate(counts):
        m_blocks = -(-m // cfg.block_m)
        for index in range(cfgmod.tiles_per_task(m, n, cfg)):
            mn, split = divmod(index, s)
            k0 = split * nk // s
            out.append((task, mn % m_blocks, mn // m_blocks, k0, (split + 1) * nk // s - k0))
    return out


@pytest.mark.parametrize("split", [1, 2, 3, 4, 7, 16])
@pytest.mark.parametrize("k", [200, 1024, 2880])
def test_split_k_tiles_cover_every_k_step_once(split: int, k: int) -> None:
    nk = -(-k // 64)
    if split > nk:
        pytest.skip("the host refuses split_k > ceil(k / 64)")
    cfg = cfgmod.GemmConfig(block_m=8, block_n=64, stages=12, swap_ab=True, split_k=split)
    counts, n = [3, 0, 17, 8, 1], 320
    tiles = _kernel_tiles(counts, n, k, cfg)
    assert len(tiles) == sum(cfgmod.tiles_per_task(m, n, cfg) for m in counts)
    assert len(tiles) % split == 0
    # The plan RoutePlan.tile_offsets builds on the device: sizes (m, n, split), tiles (bm, bn, 1).
    host = sb.plan([[m, n, split] for m in counts], (cfg.block_m, cfg.block_n, 1))
    assert list(host.tile_offsets) == [0, *itertools.accumulate(cfgmod.tiles_per_task(m, n, cfg) for m in counts)]
    steps: dict[tuple[int, int, int], list[int]] = {}
    for tid, (task, mb, nb, k0, kn) in enumerate(tiles):
        assert kn >= 1  # no empty slice when split <= ceil(k / 64)
        # The slices of one output tile are the neighbouring ids tid // split * split + 0..split-1.
        assert tiles[tid // split * split][:3] == (task, mb, nb)
        steps.setdefault((task, mb, nb), []).extend(range(k0, k0 + kn))
    assert len(steps) == sum(-(-m // 8) * -(-n // 64) for m in counts)
    assert all(sorted(v) == list(range(nk)) for v in steps.values())


def test_split_k_workspace_bounds_hold_for_any_routing() -> None:
    g = torch.Generator().manual_seed(0)
    for bm, bn, n, rows, e in ((8, 128, 1536, 8, 128), (16, 64, 2880, 64, 16), (64, 128, 4096, 300, 8),
                               (8, 64, 320, 1, 1), (48, 128, 256, 97, 384)):
        cfg = cfgmod.GemmConfig(block_m=bm, block_n=bn, stages=4, swap_ab=True, split_k=4)
        bound = cfgmod.max_output_tiles(rows, e, n, cfg)
        for _ in range(200):
            ids = torch.randint(0, e, (rows,), generator=g)
            if torch.rand(1, generator=g).item() < 0.3:  # skewed: few experts
                ids = ids % max(1, e // 16)
            counts = torch.bincount(ids, minlength=e).tolist()
            out_tiles = sum(-(-m // bm) * -(-n // bn) for m in counts)
            assert out_tiles <= bound
            assert sum(cfgmod.tiles_per_task(m, n, cfg) for m in counts) <= bound * 4
        assert cfgmod.splitk_workspace_floats(rows, e, n, cfg) == bound * 4 * bm * bn
        assert cfgmod.splitk_counter_count(rows, e, n, cfg) == bound * cfg.num_consumers
    one = cfgmod.GemmConfig(block_m=8, block_n=128, stages=12, swap_ab=True)
    assert cfgmod.splitk_workspace_floats(8, 128, 1536, one) == cfgmod.splitk_counter_count(8, 128, 1536, one) == 0


def test_heuristic_splits_only_small_swap_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not cfgmod.USE_SPLIT_K  # off by default (measured slower); below: what it would pick when on
    monkeypatch.setattr(cfgmod, "USE_SPLIT_K", True)
    moe.choose_config.cache_clear()  # choose_config is memoised
    try:
        h, i, e, k = MODELS["Qwen3-30B-A3B"]
        cfg = moe.choose_config(1 * k, e, 2 * i, h, "bf16", "silu_and_mul", True)
        assert cfg.swap_ab and cfg.split_k > 1  # 96 weight tiles of 128 rows on 132 SMs: split
        for (h, i, e, k), t in itertools.product(MODELS.values(), TS):
            for n, kk, act, gather in ((2 * i, h, "silu_and_mul", True), (h, i, None, False)):
                cfg = moe.choose_config(t * k, e, n, kk, "bf16", act, gather)
                if cfg.split_k > 1:
                    assert cfg.swap_ab and t <= 16, (t, cfg)
                    assert -(-kk // 64) >= cfg.split_k * cfgmod.SPLIT_K_MIN_STEPS
                    assert cfgmod.tiles_per_task(1, n, cfg) > 0
    finally:
        moe.choose_config.cache_clear()


def test_candidates_offer_split_variants() -> None:
    h, i, e, k = MODELS["Qwen3-30B-A3B"]
    args = (1 * k, e, 2 * i, h, "bf16", "silu_and_mul", True)
    cands = cfgmod.candidate_configs(*args)
    assert cands[0] == moe.choose_config(*args)
    assert len(cands) == len(set(cands)) <= 8
    assert {c.split_k for c in cands} >= {1, cands[0].split_k}
    # An unsplit swap choice still offers splits 2 and 4 where K allows.
    h, i, e, k = MODELS["DeepSeek-V3"]
    cands = cfgmod.candidate_configs(1 * k, e, 2 * i, h, "bf16", "silu_and_mul", True)
    assert cands[0].split_k == 1 and {2, 4} <= {c.split_k for c in cands}


# ---------------------------------------------------------------------------------------------
# Tall tiles (block_m = 256: two consumer warp groups of two 64-row slices each)
# ---------------------------------------------------------------------------------------------


def test_tall_config_validation_and_launch_shape() -> None:
    cfg = cfgmod.GemmConfig(block_m=256, block_n=128, stages=4, activation="silu_and_mul", gather=True)
    assert cfg.kernel_name == "sb_grouped_gemm_bf16_bm256_bn128_s4_gcpa_silu"
    assert cfg.num_consumers == 2 and cfgmod.threads(cfg) == 384
    # Ring of 4 x (256 + 128) x 128 bytes, two 8 KB staging buffers per group, barriers, slack.
    assert cfgmod.shared_bytes(cfg) == 4 * 384 * 128 + 2 * 2 * 8192 + 1024 + 1024 <= cfgmod.MAX_SHARED_BYTES
    assert cfgmod._max_stages(256, 128, 6) == 4 and cfgmod._max_stages(256, 192, 6) == 3
    assert cfgmod._token_box_rows(cfg) == 64 and cfgmod._token_box_rows(cfgmod.GemmConfig()) == 128
    for bn in (64, 96, 192):
        cfgmod.GemmConfig(block_m=256, block_n=bn, stages=3)
    with pytest.raises(sb.InvalidArgumentError, match="block_m=256"):
        cfgmod.GemmConfig(block_m=256, block_n=256, stages=2)
    with pytest.raises(sb.InvalidArgumentError, match="pingpong"):
        cfgmod.GemmConfig(block_m=256, block_n=128, pingpong=True)
    with pytest.raises(sb.InvalidArgumentError, match="swap mode"):
        cfgmod.GemmConfig(block_m=96, block_n=128, swap_ab=True)  # (FITTED_SIZES are fitted swap tiles)
    with pytest.raises(sb.InvalidArgumentError, match="shared memory"):
        cfgmod.GemmConfig(block_m=256, block_n=128, stages=5)
    src = cfgmod.kernel_source(cfg)
    assert "GemmShape<256, 128, 4, false, false, 2>" in src and "__launch_bounds__(384, 1)" in src


def test_triple_tile_config_validation_and_launch_shape() -> None:
    """192-row cooperative tiles: three consumer warp groups (512 threads), one 192-row TMA box,
    three groups' 8 KB staging buffers; at most 192 wide, not ping-pong, no in-loop gather, no
    store warps or dynamic tiles; clusters allowed."""
    cfg = cfgmod.triple_config(192, None, "bf16", False)
    assert cfg.kernel_name == "sb_grouped_gemm_bf16_bm192_bn192_s3_c2"
    assert cfg.num_consumers == 3 and cfgmod.threads(cfg) == 512
    assert cfgmod.shared_bytes(cfg) == 3 * (192 + 192) * 128 + 3 * 2 * 8192 + 1024 + 1024 <= cfgmod.MAX_SHARED_BYTES
    assert cfgmod._token_box_rows(cfg) == 192 and cfgmod._slices(cfg) == 1
    narrow = cfgmod.triple_config(256, "silu_and_mul", "fp16", True, cluster=1)
    assert (narrow.block_n, narrow.stages, narrow.gather_mode, narrow.cluster) == (192, 3, "staged", 1)
    assert cfgmod.triple_config(128, None, "bf16", False).stages == 4
    base = dict(block_m=192, block_n=192, stages=3)
    for bad in (dict(block_n=256), dict(pingpong=True), dict(gather=True, activation="silu_and_mul")):
        with pytest.raises(sb.InvalidArgumentError, match="`block_m=192` needs block_n <= 192"):
            cfgmod.GemmConfig(**{**base, **bad})
    for flag in ("store_warps", "dynamic"):
        with pytest.raises(sb.InvalidArgumentError, match=f"`{flag}=True` needs normal mode, block_m=128"):
            cfgmod.GemmConfig(**base, **{flag: True})
    src = cfgmod.kernel_source(cfg)
    assert "GemmShape<192, 192, 3, false, false, 2>" in src and "__launch_bounds__(512, 1)" in src
    # The sweep list offers it beside the heuristic's 128-row tiles.
    assert cfg in cfgmod.candidate_configs(32768, 8, 4096, 14336)


def test_pingpong_128_config_validation_and_launch_shape() -> None:
    """128-row ping-pong tiles: each group's tile is two 64-row slices (at most 192 wide), one
    64-row TMA box per slice, the two groups' 8 KB staging buffers as for 64-row ping-pong."""
    cfg = cfgmod.GemmConfig(block_m=128, block_n=192, stages=4, pingpong=True)
    assert cfg.kernel_name == "sb_grouped_gemm_bf16_bm128_bn192_s4_pp"
    assert cfg.num_consumers == 2 and cfgmod.threads(cfg) == 384
    assert cfgmod.shared_bytes(cfg) == 4 * (128 + 192) * 128 + 2 * 2 * 8192 + 1024 + 1024 <= cfgmod.MAX_SHARED_BYTES
    assert cfgmod._max_stages(128, 192, 6, pingpong=True) == 4 and cfgmod._max_stages(128, 128, 6, pingpong=True) == 6
    assert cfgmod._token_box_rows(cfg) == 64 and cfgmod._slices(cfg) == 2
    assert cfgmod._token_box_rows(cfgmod.GemmConfig(block_m=64, block_n=256, pingpong=True)) == 64
    assert cfgmod._slices(cfgmod.GemmConfig(block_m=128, block_n=256)) == 1
    for bn in (64, 96, 128):
        cfgmod.GemmConfig(block_m=128, block_n=bn, stages=4, pingpong=True, cluster=2)
    with pytest.raises(sb.InvalidArgumentError, match="block_n <= 192"):
        cfgmod.GemmConfig(block_m=128, block_n=256, stages=3, pingpong=True)
    with pytest.raises(sb.InvalidArgumentError, match="store_warps"):
        cfgmod.GemmConfig(block_m=128, block_n=192, stages=3, pingpong=True, store_warps=True)
    src = cfgmod.kernel_source(cfg)
    assert "GemmShape<128, 192, 4, false, true, 2>" in src and "__launch_bounds__(384, 1)" in src


def test_tall_tiles_skip_empty_slices() -> None:
    """Python twin of the tall tile's slice skipping: each expert's weight tile is read
    ceil(m / 256) times and at most 63 rows of compute per expert are wasted."""
    cfg = cfgmod.GemmConfig(block_m=256, block_n=128, stages=4)
    for m in (1, 63, 64, 65, 127, 128, 129, 191, 192, 193, 255, 256, 257, 300, 513):
        m_blocks = cfgmod.tiles_per_task(m, 128, cfg)
        assert m_blocks == -(-m // 256)
        computed = 0
        for mb in range(m_blocks):
            for group in range(2):
                rows = m - mb * 256 - group * 128  # as the kernel computes it
                live = 2 if rows > 64 else (1 if rows > 0 else 0)
                computed += 64 * live
        assert m <= computed < m + 64


def test_heuristic_picks_tall_tiles_for_mid_sized_experts(monkeypatch: pytest.MonkeyPatch) -> None:
    h, i, e, k = MODELS["Qwen3-235B-A22B"]
    args = (4096 * k, e, 2 * i, h, "bf16", "silu_and_mul", True)
    assert not cfgmod.USE_TALL_TILES and moe.choose_config(*args).block_m in (64, 128)  # off: measured slower
    assert cfgmod.GemmConfig(block_m=256, block_n=128, stages=4, activation="silu_and_mul", gather=True) in (
        cfgmod.candidate_configs(*args))
    monkeypatch.setattr(cfgmod, "USE_TALL_TILES", True)
    cfgmod.choose_config.cache_clear()  # memoised
    try:
        tall = {}
        for rows_per_expert in (96, 128, 129, 200, 256, 400, 600, 601, 1024):
            cfg = moe.choose_config(rows_per_expert * 64, 64, 3072, 4096, "bf16", "silu_and_mul", True)
            tall[rows_per_expert] = cfg.block_m == 256
            if cfg.block_m == 256:
                assert (cfg.block_n, cfg.stages, cfg.pingpong, cfg.swap_ab) == (128, 4, False, False)
        assert tall == {96: False, 128: False, 129: True, 200: True, 256: True, 400: True, 600: True, 601: False,
                        1024: False}
        assert moe.choose_config(*args).block_m == 256
    finally:
        monkeypatch.undo()
        cfgmod.choose_config.cache_clear()


@pytest.mark.nvrtc
def test_tall_tile_widths_compile_without_spills() -> None:
    for bn, act, gather, mode in ((64, None, True, "tma"), (96, "silu_and_mul", False, "cp_async"),
                                  (192, "silu_and_mul", True, "cp_async")):
        cfg = cfgmod.GemmConfig(block_m=256, block_n=bn, stages=cfgmod._max_stages(256, bn, 6), activation=act,
                                gather=gather, gather_mode=mode)
        compiled = sb.compile_source(cfgmod.kernel_source(cfg), cfg.kernel_name, arch="sm_90a",
                                     options=("--ptxas-options=-v",))
        _assert_clean_cubin(cfg.kernel_name, compiled)


def test_heuristic_wide_tile_pads_n_least() -> None:
    """192-wide tiles where N is a multiple of 192 but not of 256 (GPT-OSS-120B), 256 elsewhere
    (the cooperative tiles; the 128-row ping-pong tiles of USE_PINGPONG128 are 192 wide)."""
    h, i, e, k = MODELS["GPT-OSS-120B"]
    assert cfgmod._wide_tile(2 * i) == cfgmod._wide_tile(h) == 192
    for t in (4096, 16384):
        assert moe.choose_config(t * k, e, 2 * i, h, "bf16", "silu_and_mul", True).block_n == 192
        assert moe.choose_config(t * k, e, h, i, "bf16", None, False).block_n == 192
    for model in ("Mixtral-8x7B", "Qwen3-30B-A3B", "DeepSeek-V3", "Qwen3-235B-A22B"):
        h, i, e, k = MODELS[model]
        assert cfgmod._wide_tile(2 * i) == cfgmod._wide_tile(h) == 256
        for n, kk, act in ((2 * i, h, "silu_and_mul"), (h, i, None)):
            cfg = moe.choose_config(16384 * k, e, n, kk, "bf16", act, act is not None)
            assert cfg.block_n == (192 if cfg.pingpong else 256), (model, n, kk, cfg)
            assert cfg.pingpong == (kk <= cfgmod.PINGPONG128_MAX_K), (model, n, kk, cfg)


# ---------------------------------------------------------------------------------------------
# Tile classes (a configuration per range of rows per expert)
# ---------------------------------------------------------------------------------------------


def test_tile_class_validation() -> None:
    cfg = cfgmod.GemmConfig()
    assert cfgmod.TileClass(cfg).covers_all and not cfgmod.TileClass(cfg, 0, 64).covers_all
    with pytest.raises(sb.InvalidArgumentError, match="`config` must be a GemmConfig"):
        cfgmod.TileClass("128x256")  # type: ignore[arg-type]
    with pytest.raises(sb.InvalidArgumentError, match="`min_rows` must be an int >= 0"):
        cfgmod.TileClass(cfg, -1)
    with pytest.raises(sb.InvalidArgumentError, match="`max_rows` must be None or an int > min_rows=64"):
        cfgmod.TileClass(cfg, 64, 64)


def _check_classes(classes, **kw):  # type: ignore[no-untyped-def]
    return cfgmod.check_tile_classes(classes, **({"dtype": "bf16", "activation": None, "gather": False} | kw))


def test_check_tile_classes_needs_every_row_count_once() -> None:
    a, b, c = cfgmod.GemmConfig(block_m=64, pingpong=True), cfgmod.GemmConfig(), cfgmod.GemmConfig(block_m=256,
                                                                                                 block_n=128)
    good = [cfgmod.TileClass(b, 300, None), cfgmod.TileClass(a, 0, 100), cfgmod.TileClass(c, 100, 300)]
    assert _check_classes(good) == tuple(good)  # any order; launched in the given order
    assert _check_classes([cfgmod.TileClass(b)]) == (cfgmod.TileClass(b),)
    for bad in ([cfgmod.TileClass(a, 0, 100), cfgmod.TileClass(b, 101, None)],  # gap
                [cfgmod.TileClass(a, 0, 100), cfgmod.TileClass(b, 50, None)],  # overlap
                [cfgmod.TileClass(a, 0, 100)],  # no class without an upper bound
                [cfgmod.TileClass(a, 1, None)],  # m = 1 uncovered
                [cfgmod.TileClass(a), cfgmod.TileClass(b)]):  # two unbounded
        with pytest.raises(sb.InvalidArgumentError, match="cover every row count"):
            _check_classes(bad)
    with pytest.raises(sb.InvalidArgumentError, match="non-empty sequence of TileClass"):
        _check_classes([])
    with pytest.raises(sb.InvalidArgumentError, match="non-empty sequence of TileClass"):
        _check_classes([b])
    with pytest.raises(sb.InvalidArgumentError, match="a GemmConfig or a sequence of TileClass"):
        _check_classes(3)
    with pytest.raises(sb.InvalidArgumentError, match="must match dtype=bf16, activation='silu_and_mul'"):
        _check_classes([cfgmod.TileClass(b)], activation="silu_and_mul", gather=True)


@pytest.mark.parametrize("model", list(MODELS))
def test_heuristic_tile_classes(model: str) -> None:
    """Cover every row count; the last class is choose_config's; from TILE_CLASSES_MIN_TOKENS
    tokens a swap-mode average gets 64-row ping-pong tiles for its hot experts, from
    FITTED_CLASS_MIN_TOKENS up to there (large enough weights) fitted swap tiles, and from
    HOT_TALL_MIN_TOKENS a ping-pong average (large enough weights) 128-row clustered tiles for
    experts above PINGPONG_MAX_ROWS, heaviest first; there, for busy experts of at most
    FITTED_WIDE_MAX_ROWS rows, fitted FITTED_WIDE-token tiles up to FITTED_WIDE_SPLIT[0] rows."""
    h, i, e, k = MODELS[model]
    for t in (*TS, 512, 700, 2048, 3000):
        for n, kk, act, gather in ((2 * i, h, "silu_and_mul", True), (h, i, None, False)):
            classes = moe.choose_tile_classes(t * k, e, n, kk, "bf16", act, gather, num_tokens=t)
            assert _check_classes(classes, activation=act, gather=gather) == classes
            base = moe.choose_config(t * k, e, n, kk, "bf16", act, gather)
            m_est = cfgmod._rows_estimate(t * k, e)[2]
            hot_tall = (t >= cfgmod.HOT_TALL_MIN_TOKENS and not base.swap_ab and base.block_m == 64
                        and n * kk >= cfgmod.HOT_TALL_MIN_WEIGHT)
            wide = hot_tall and cfgmod.USE_FITTED_WIDE and m_est <= cfgmod.FITTED_WIDE_MAX_ROWS
            if wide:  # 128-row above 320 rows, ping-pong above 160, fitted 160-token tiles below
                hot, mid, fitted = classes
                assert [(c.min_rows, c.max_rows) for c in classes] == [(320, None), (160, 320), (0, 160)]
                assert hot.config.block_m == 128 and hot.config.cluster == 2 and mid.config == base
                assert cfgmod.is_fitted(fitted.config) and fitted.config.block_m == cfgmod.FITTED_WIDE == 160
                assert fitted.config.gather_mode == ("staged" if gather else "cp_async")
                continue
            assert classes[-1].config == base
            fitted_class = (cfgmod.FITTED_CLASS_MIN_TOKENS <= t < cfgmod.TILE_CLASSES_MIN_TOKENS and base.swap_ab
                            and base.block_m <= cfgmod.FITTED_CLASS_MIN_ROWS
                            and n * kk >= cfgmod.FITTED_CLASS_MIN_WEIGHT)
            if hot_tall:  # 128-row clustered tiles above PINGPONG_MAX_ROWS rows
                hot = classes[0]
                assert len(classes) == 2 and (hot.min_rows, hot.max_rows) == (cfgmod.PINGPONG_MAX_ROWS, None)
                assert hot.config.block_m == 128 and hot.config.cluster == 2
                if kk <= cfgmod.PINGPONG128_MAX_K and base.block_n in cfgmod.PINGPONG128_WIDTHS:  # USE_PINGPONG128
                    assert hot.config.pingpong and hot.config.block_n == 192
                else:
                    assert not hot.config.pingpong and hot.config.block_n == base.block_n
                assert hot.config.gather_mode == ("staged" if gather else "cp_async")
            elif fitted_class:  # a class of fitted 128-token tiles for the experts above 32 rows
                hot = classes[0]
                assert len(classes) == 2 and (hot.min_rows, hot.max_rows) == (cfgmod.FITTED_CLASS_MIN_ROWS, None)
                assert cfgmod.is_fitted(hot.config) and hot.config.block_m == 128
                assert hot.config.gather_mode == ("staged" if gather else "cp_async")
            elif t < cfgmod.TILE_CLASSES_MIN_TOKENS or not base.swap_ab or cfgmod.is_fitted(base):
                assert len(classes) == 1
            else:
                hot = classes[0]
                assert len(classes) == 2 and (hot.min_rows, hot.max_rows) == (cfgmod.SWAP_MAX_ROWS, None)
                assert hot.config.pingpong and hot.config.block_m == 64 and not hot.config.swap_ab
                assert hot.config.gather_mode == ("staged" if gather else "cp_async")
    # DeepSeek-V3 at T = 1024 (32 rows per expert on average): swap mode, ping-pong above 64 rows.
    h, i, e, k = MODELS["DeepSeek-V3"]
    classes = moe.choose_tile_classes(1024 * k, e, 2 * i, h, "bf16", "silu_and_mul", True, num_tokens=1024)
    assert [(c.min_rows, c.max_rows) for c in classes] == [(64, None), (0, 64)]
    assert classes[-1].config.swap_ab
    # ... and at T = 128 (4 rows on average): fitted tiles above 32 rows.
    classes = moe.choose_tile_classes(128 * k, e, 2 * i, h, "bf16", "silu_and_mul", True, num_tokens=128)
    assert [(c.min_rows, c.max_rows) for c in classes] == [(32, None), (0, 32)]
    assert cfgmod.is_fitted(classes[0].config) and classes[-1].config.block_m == 8
    # Qwen3-30B-A3B's small weights get no fitted class at T = 128, and fitted tiles for every
    # expert at T = 1024 (64 rows on average).
    h, i, e, k = MODELS["Qwen3-30B-A3B"]
    assert len(moe.choose_tile_classes(128 * k, e, 2 * i, h, "bf16", "silu_and_mul", True, num_tokens=128)) == 1
    (only,) = moe.choose_tile_classes(1024 * k, e, 2 * i, h, "bf16", "silu_and_mul", True, num_tokens=1024)
    assert cfgmod.is_fitted(only.config) and only.config.gather_mode == "staged"
    # ... and no hot class at T = 4096, where DeepSeek-V3, GPT-OSS-120B and Qwen3-235B-A22B get
    # 128-row clustered tiles above 320 rows and Mixtral-8x7B has 128-row tiles for every expert;
    # DeepSeek-V3 and GPT-OSS-120B (128 rows per expert on average) fitted 160-token tiles up to
    # 160 rows, Qwen3-235B-A22B (256) ping-pong tiles up to 320.
    assert len(moe.choose_tile_classes(4096 * k, e, 2 * i, h, "bf16", "silu_and_mul", True, num_tokens=4096)) == 1
    for name in ("DeepSeek-V3", "GPT-OSS-120B", "Qwen3-235B-A22B"):
        h, i, e, k = MODELS[name]
        classes = moe.choose_tile_classes(4096 * k, e, h, i, "bf16", None, False, num_tokens=4096)
        assert classes[0].config.block_m == 128 and (classes[0].min_rows, classes[0].max_rows) == (320, None)
        if name == "Qwen3-235B-A22B":
            assert [(c.min_rows, c.max_rows) for c in classes] == [(320, None), (0, 320)]
            assert classes[-1].config.pingpong
        else:
            assert [(c.min_rows, c.max_rows) for c in classes] == [(320, None), (160, 320), (0, 160)]
            assert classes[1].config.pingpong and cfgmod.is_fitted(classes[2].config)
    h, i, e, k = MODELS["Mixtral-8x7B"]
    (only,) = moe.choose_tile_classes(4096 * k, e, h, i, "bf16", None, False, num_tokens=4096)
    assert only.config.block_m == 128


@pytest.mark.parametrize("model", list(MODELS))
def test_heuristic_tile_classes_for_tiled_weights(model: str) -> None:
    """With tiled weights every class carries ``tiled_w``; from HOT_TALL_MIN_TOKENS, where the
    average expert would get 64-row ping-pong tiles with K <= PINGPONG128_MAX_K and has at least
    TILED_TALL_MIN_ROWS rows, one class of 128 x 192 ping-pong clusters; elsewhere the classes
    of plain weights."""
    h, i, e, k = MODELS[model]
    tall_seen = False
    for t in (*TS, 512, 2048, 3000, 6000, 8192):
        for n, kk, act, gather in ((2 * i, h, "silu_and_mul", True), (h, i, None, False)):
            plain = moe.choose_tile_classes(t * k, e, n, kk, "bf16", act, gather, num_tokens=t)
            tiled = moe.choose_tile_classes(t * k, e, n, kk, "bf16", act, gather, num_tokens=t, tiled_w=True)
            assert all(c.config.tiled_w for c in tiled) and not any(c.config.tiled_w for c in plain)
            base = moe.choose_config(t * k, e, n, kk, "bf16", act, gather)
            tall = (t >= cfgmod.HOT_TALL_MIN_TOKENS and not base.swap_ab and base.block_m == 64
                    and kk <= cfgmod.PINGPONG128_MAX_K and t * k / min(e, t * k) >= cfgmod.TILED_TALL_MIN_ROWS)
            if tall:
                tall_seen = True
                (only,) = tiled
                cfg = only.config
                assert (cfg.block_m, cfg.block_n, cfg.pingpong, cfg.cluster) == (128, 192, True, 2)
                assert cfg.gather_mode == ("staged" if gather else "cp_async")
                assert _check_classes(tiled, activation=act, gather=gather) == tiled
            elif len(plain) == 3:  # 128-row, ping-pong, fitted: the ping-pong class goes
                hot, fitted = tiled
                assert [(c.min_rows, c.max_rows) for c in tiled] == [(cfgmod.FITTED_WIDE_SPLIT[0], None),
                                                                      (0, cfgmod.FITTED_WIDE_SPLIT[0])]
                assert dataclasses.replace(hot.config, tiled_w=False) == plain[0].config
                assert dataclasses.replace(fitted.config, tiled_w=False) == plain[2].config
                assert _check_classes(tiled, activation=act, gather=gather) == tiled
            else:
                assert [(c.min_rows, c.max_rows) for c in tiled] == [(c.min_rows, c.max_rows) for c in plain]
                assert [dataclasses.replace(c.config, tiled_w=False) for c in tiled] == [c.config for c in plain]
    # The grid's points: Qwen3-30B-A3B and Qwen3-235B-A22B (256 rows per expert) at T = 4096;
    # GPT-OSS-120B, DeepSeek-V3 (128 rows) and Mixtral-8x7B (128-row tiles already) not.
    assert tall_seen == (model in ("Qwen3-30B-A3B", "Qwen3-235B-A22B", "GPT-OSS-120B", "DeepSeek-V3"))
    if model.startswith("Qwen3"):
        for n, kk, act, gather in ((2 * i, h, "silu_and_mul", True), (h, i, None, False)):
            (only,) = moe.choose_tile_classes(4096 * k, e, n, kk, "bf16", act, gather, num_tokens=4096, tiled_w=True)
            assert only.config.block_m == 128 and only.config.cluster == 2
    else:  # Mixtral-8x7B: the classes of plain weights; GPT-OSS-120B, DeepSeek-V3: no ping-pong class
        for n, kk, act, gather in ((2 * i, h, "silu_and_mul", True), (h, i, None, False)):
            tiled = moe.choose_tile_classes(4096 * k, e, n, kk, "bf16", act, gather, num_tokens=4096, tiled_w=True)
            plain = moe.choose_tile_classes(4096 * k, e, n, kk, "bf16", act, gather, num_tokens=4096)
            kept = [c for c in plain if model == "Mixtral-8x7B" or not c.config.pingpong or c.config.cluster > 1]
            assert [c.config.kernel_name + "_wt" for c in kept] == [c.config.kernel_name for c in tiled]


def test_tiled_tall_class_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    h, i, e, k = MODELS["Qwen3-235B-A22B"]
    monkeypatch.setattr(cfgmod, "USE_TILED_TALL", False)
    moe.choose_tile_classes.cache_clear()
    try:
        classes = moe.choose_tile_classes(4096 * k, e, h, i, num_tokens=4096, tiled_w=True)
        assert [(c.min_rows, c.max_rows) for c in classes] == [(320, None), (0, 320)]
    finally:
        moe.choose_tile_classes.cache_clear()


def test_tile_classes_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cfgmod, "USE_TILE_CLASSES", False)
    moe.choose_tile_classes.cache_clear()
    try:
        assert len(moe.choose_tile_classes(1024 * 8, 256, 4096, 7168, num_tokens=1024)) == 1
    finally:
        moe.choose_tile_classes.cache_clear()


def test_grouped_gemm_checks_tile_classes_on_every_device() -> None:
    ids = torch.tensor([[0], [1], [1]], dtype=torch.int32)
    p = moe.route_plan(ids, 2)
    a, w = torch.randn(3, 64, dtype=torch.bfloat16), torch.randn(2, 128, 64, dtype=torch.bfloat16)
    with pytest.raises(sb.InvalidArgumentError, match="cover every row count"):
        moe.grouped_gemm(a, w, p, gather=True, config=[moe.TileClass(cfgmod.GemmConfig(gather=True), 0, 1)])
    with pytest.raises(sb.InvalidArgumentError, match="must match dtype=bf16"):
        moe.grouped_gemm(a, w, p, gather=True, config=[moe.TileClass(cfgmod.GemmConfig(dtype="fp16", gather=True))])
    with pytest.raises(sb.InvalidArgumentError, match="`config` must be a GemmConfig or a sequence"):
        moe.grouped_gemm(a, w, p, gather=True, config=3)
    classes = [moe.TileClass(cfgmod.GemmConfig(gather=True), 1, None),
               moe.TileClass(cfgmod.GemmConfig(block_m=64, pingpong=True, gather=True), 0, 1)]
    got = moe.grouped_gemm(a, w, p, gather=True, config=classes)  # CPU: the reference path
    assert torch.equal(got, moe.grouped_gemm_reference(a, w, p, gather=True))


@pytest.mark.nvrtc
def test_every_mlp_config_compiles_without_spills() -> None:
    from moe_cases import mlp_configs

    for cfg in mlp_configs():
        compiled = sb.compile_source(cfgmod.mlp_kernel_source(cfg), cfgmod.mlp_kernel_name(cfg), arch="sm_90a",
                                     options=("--ptxas-options=-v",))
        _assert_clean_cubin(cfgmod.mlp_kernel_name(cfg), compiled)


def _mlp_problem(t: int, e: int, k: int, h: int, i: int, dtype=torch.bfloat16):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(t * 31 + e)
    ids = uniform_ids(t, e, k, device="cpu", generator=g)
    plan = moe.route_plan(ids, e)
    x = torch.randn(t, h, generator=g).to(dtype)
    w1 = moe.pack_gate_up((torch.randn(e, 2 * i, h, generator=g) / h**0.5).to(dtype))
    w2 = (torch.randn(e, h, i, generator=g) / i**0.5).to(dtype)
    return x, w1, w2, plan


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_grouped_mlp_reference_path_is_the_two_gemms(dtype: torch.dtype) -> None:
    x, w1, w2, plan = _mlp_problem(7, 8, 2, 64, 48, dtype)
    y = moe.grouped_mlp(x, w1, w2, plan)
    mid = moe.grouped_gemm_reference(x, w1, plan, activation="silu_and_mul")
    want = moe.grouped_gemm_reference(mid, w2, plan, gather=False)
    assert torch.equal(y, want)
    out = torch.full_like(want, float("nan"))
    assert moe.grouped_mlp(x, w1, w2, plan, out=out, config=False) is out
    assert torch.equal(out, want)
    assert torch.equal(moe.grouped_mlp_reference(x, w1, w2, plan), want)


def test_grouped_mlp_bad_input() -> None:
    x, w1, w2, plan = _mlp_problem(5, 8, 2, 64, 48)
    with pytest.raises(sb.InvalidArgumentError, match=r"`w2` must have shape \[8, 64, 48\]"):
        moe.grouped_mlp(x, w1, w2[:, :, :16].contiguous(), plan)
    with pytest.raises(sb.InvalidArgumentError, match="`w2` must be a contiguous"):
        moe.grouped_mlp(x, w1, w2.half(), plan)
    with pytest.raises(sb.InvalidArgumentError, match="GateUpWeight"):
        moe.grouped_mlp(x, w1.unpack(), w2, plan)
    with pytest.raises(sb.InvalidArgumentError, match="swap-mode tile"):
        moe.grouped_mlp(x, w1, w2, plan, config=moe.GemmConfig())
    with pytest.raises(sb.InvalidArgumentError, match=r"`config.dtype` must be 'bf16'"):
        moe.grouped_mlp(x, w1, w2, plan, config=cfgmod._swap_config(8, 128, "silu_and_mul", "fp16", True))
    with pytest.raises(sb.InvalidArgumentError, match="`config` must be a GemmConfig, None or False"):
        moe.grouped_mlp(x, w1, w2, plan, config="fast")
    with pytest.raises(sb.InvalidArgumentError, match=r"`out` must be a contiguous .* \[10, 64\]"):
        moe.grouped_mlp(x, w1, w2, plan, out=torch.empty(10, 48, dtype=x.dtype))


def test_mlp_heuristic(monkeypatch: pytest.MonkeyPatch) -> None:
    h, i, e, k = MODELS["Qwen3-30B-A3B"]
    assert cfgmod.choose_mlp_config(8, e, h, i, num_tokens=1) is None  # off by default (measured slower)
    monkeypatch.setattr(cfgmod, "USE_GROUPED_MLP", True)
    cfgmod.choose_mlp_config.cache_clear()
    try:
        for t in (1, 16, 128):
            cfg = cfgmod.choose_mlp_config(t * k, e, h, i, num_tokens=t)
            assert cfg is not None and cfg.swap_ab and cfg.split_k == 1 and cfg.block_n in (64, 128)
            up = cfgmod.choose_config(t * k, e, 2 * i, h, "bf16", "silu_and_mul", True)
            assert cfg.block_m >= up.block_m
        assert cfgmod.choose_mlp_config(16384 * k, e, h, i, num_tokens=16384) is None  # compute bound: two launches
    finally:
        cfgmod.choose_mlp_config.cache_clear()
    assert cfgmod.mlp_flag_count(100, 8, 16) == 1 + 7 + 8
    assert cfgmod.mlp_kernel_name(cfgmod._swap_config(8, 64, "silu_and_mul", "fp16", True)) == "sb_grouped_mlp_fp16_bm8_bn64_s12"


def test_concurrent_pairs_of_the_heuristic() -> None:
    """Concurrent classes: the heuristic's (clustered 128-row, fitted swap) classes at T = 4096 on
    tiled weights are pairs, and a fitted tile's cost follows its weight bytes against the hot
    tile's multiply-adds; one class, two normal-mode classes, or a cold class staged behind a hot
    one that does not stage, are not pairs."""
    for model in ("DeepSeek-V3", "GPT-OSS-120B"):
        h, i, e, k = MODELS[model]
        for n, kk, act, gather in ((2 * i, h, "silu_and_mul", True), (h, i, None, False)):
            classes = moe.choose_tile_classes(4096 * k, e, n, kk, "bf16", act, gather, num_tokens=4096, tiled_w=True)
            assert cfgmod.concurrent_pair(classes), (model, classes)
    hot, cold = classes[0].config, classes[1].config
    assert cfgmod.split_cost(hot, cold) == pytest.approx(cold.block_n * cfgmod.SPLIT_FLOPS_PER_BYTE
                                                         / (hot.block_m * hot.block_n))
    # A 128-token-wide swap tile against a 128 x 256 one: 143.8 FLOP/B * 128 / 32768 = 0.56.
    assert cfgmod.split_cost(cfgmod.GemmConfig(block_m=128, block_n=256, cluster=2),
                             cfgmod.GemmConfig(block_m=160, block_n=128, swap_ab=True, stages=5)) == pytest.approx(
        0.5618, rel=1e-3)
    h, i, e, k = MODELS["Qwen3-30B-A3B"]
    assert not cfgmod.concurrent_pair(moe.choose_tile_classes(1 * k, e, h, i, "bf16", None, False, num_tokens=1))
    pp = cfgmod.GemmConfig(block_m=64, block_n=256, pingpong=True)
    c2 = cfgmod.GemmConfig(block_m=128, block_n=256, cluster=2)
    swap = cfgmod.GemmConfig(block_m=160, block_n=128, swap_ab=True, stages=5)
    assert not cfgmod.concurrent_pair((moe.TileClass(c2, 320, None), moe.TileClass(pp, 0, 320)))
    assert cfgmod.concurrent_pair((moe.TileClass(pp, 160, None), moe.TileClass(swap, 0, 160)))
    staged = dict(gather=True, gather_mode="staged", activation="silu_and_mul")
    cold_staged = dataclasses.replace(swap, **staged)
    assert not cfgmod.concurrent_pair((moe.TileClass(dataclasses.replace(pp, gather=True, activation="silu_and_mul"),
                                                     160, None), moe.TileClass(cold_staged, 0, 160)))
    assert cfgmod.concurrent_pair((moe.TileClass(dataclasses.replace(pp, **staged), 160, None),
                                   moe.TileClass(cold_staged, 0, 160)))


def test_launch_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    """What grouped_gemm launches for the heuristic's classes: a concurrent pair with its cold class
    on dynamic tiles; single fitted classes on dynamic tiles with USE_DYNAMIC_FITTED, static
    without it; other classes as they are."""
    h, i, e, k = MODELS["GPT-OSS-120B"]
    pair = moe.choose_tile_classes(4096 * k, e, h, i, "bf16", None, False, num_tokens=4096, tiled_w=True)
    launched, concurrent = cfgmod.launch_classes(pair)
    assert concurrent and not launched[0].config.dynamic and launched[1].config.dynamic
    assert [(c.min_rows, c.max_rows) for c in launched] == [(c.min_rows, c.max_rows) for c in pair]
    h, i, e, k = MODELS["Qwen3-30B-A3B"]
    single = moe.choose_tile_classes(1024 * k, e, h, i, "bf16", None, False, num_tokens=1024, tiled_w=True)
    assert len(single) == 1 and cfgmod.is_fitted(single[0].config)
    assert cfgmod.launch_classes(single) == ((dataclasses.replace(
        single[0], config=dataclasses.replace(single[0].config, dynamic=True)),), False)
    decode = moe.choose_tile_classes(1 * k, e, h, i, "bf16", None, False, num_tokens=1, tiled_w=True)
    assert cfgmod.launch_classes(decode) == (decode, False)
    monkeypatch.setattr(cfgmod, "USE_DYNAMIC_FITTED", False)
    monkeypatch.setattr(cfgmod, "USE_CONCURRENT_CLASSES", False)
    assert cfgmod.launch_classes(single) == (single, False) and cfgmod.launch_classes(pair) == (pair, False)


def test_programmatic_rule() -> None:
    """Programmatic launches pay for swap-mode and clustered tiles, not for 64-row ping-pong ones;
    the heuristic's decode and long-prefill down GEMMs get them, its T = 4096 ones not."""
    assert cfgmod.programmatic_pays(cfgmod.GemmConfig(block_m=8, block_n=128, swap_ab=True, stages=4))
    assert cfgmod.programmatic_pays(cfgmod.GemmConfig(block_m=128, block_n=256, cluster=2))
    assert not cfgmod.programmatic_pays(cfgmod.GemmConfig(block_m=64, block_n=256, pingpong=True))
    h, i, e, k = MODELS["Qwen3-30B-A3B"]
    assert cfgmod.programmatic_pays(moe.choose_config(1 * k, e, h, i, "bf16", None, False))
    assert not cfgmod.programmatic_pays(moe.choose_config(4096 * k, e, h, i, "bf16", None, False))
    assert cfgmod.programmatic_pays(moe.choose_config(16384 * k, e, h, i, "bf16", None, False))
