"""The Hopper grouped GEMM against the float32 reference (sm90 tier, run on the H200)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from moe_cases import MODELS, ids_with_counts, rel_err, tiled_configs, uniform_ids

import staticbatch as sb
import staticbatch_moe as moe

pytestmark = [pytest.mark.gpu, pytest.mark.sm90]
TOL = 1e-2


@pytest.fixture(scope="module", autouse=True)
def _precompile() -> None:
    """Compile every configuration these tests can reach in parallel, once."""
    from moe_cases import mlp_configs, reachable_configs

    from staticbatch_moe import _gemm_config as cfgmod

    sb.compile_many([(cfgmod.kernel_source(c), c.kernel_name) for c in reachable_configs()]
                    + [(cfgmod.mlp_kernel_source(c), cfgmod.mlp_kernel_name(c)) for c in mlp_configs()])


def _weights(e: int, n: int, k: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    g = torch.Generator(device="cuda").manual_seed(seed)
    return (torch.randn(e, n, k, device="cuda", generator=g) / k**0.5).to(dtype)


def _check(ids: torch.Tensor, e: int, n: int, k: int, *, dtype=torch.bfloat16, gather=True, silu=False,
           config=None, seed=0) -> float:  # type: ignore[no-untyped-def]
    """Run kernel and reference on fresh random data with the output poisoned; return the error."""
    g = torch.Generator(device="cuda").manual_seed(seed + 1)
    t = ids.shape[0]
    p = moe.route_plan(ids, e)
    rows = t if gather else p.num_rows
    a = torch.randn(rows, k, device="cuda", generator=g).to(dtype)
    w = _weights(e, n, k, dtype, seed)
    wt = moe.pack_gate_up(w) if silu else w
    act = "silu_and_mul" if silu else None
    out = torch.full((p.num_rows, n // 2 if silu else n), float("nan"), dtype=dtype, device="cuda")
    moe.grouped_gemm(a, wt, p, gather=gather, activation=act, out=out, config=config)
    ref = moe.grouped_gemm_reference(a, wt, p, gather=gather, activation=act)
    m = int(p.expert_starts[-1])
    if m == 0:
        return 0.0
    assert not torch.isnan(out[:m]).any(), "unwritten output rows"
    return rel_err(out[:m], ref[:m])


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("t", [1, 16, 128])
def test_model_shapes_small_t(model: str, t: int) -> None:
    h, i, e, k = MODELS[model]
    ids = uniform_ids(t, e, k)
    assert _check(ids, e, 2 * i, h, silu=True, seed=t) < TOL
    assert _check(ids, e, h, i, gather=False, seed=t + 1) < TOL


def test_no_tokens() -> None:
    ids = torch.zeros(0, 2, dtype=torch.int32, device="cuda")
    p = moe.route_plan(ids, 8)
    out = moe.grouped_gemm(torch.randn(0, 64, device="cuda", dtype=torch.bfloat16),
                           torch.randn(8, 128, 64, device="cuda", dtype=torch.bfloat16), p)
    assert out.shape == (0, 128)


EDGE = [1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 0, 255, 256, 257, 8, 9, 47, 48, 49, 95, 96, 97]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("silu", [False, True])
def test_edge_counts_every_config(dtype: torch.dtype, silu: bool) -> None:
    ids = ids_with_counts(EDGE)
    tag = "bf16" if dtype == torch.bfloat16 else "fp16"
    act = "silu_and_mul" if silu else None
    configs = {moe.choose_config(t, len(EDGE), 320, 200, tag, act, True) for t in (1, 16, 64, 256, 2048, 65536)}
    candidates = getattr(moe._gemm_config, "candidate_configs", None)
    if candidates is not None:
        for t in (16, 256, 4096):
            configs.update(candidates(t, len(EDGE), 320, 200, tag, act, True))
    # Every gather method of each configuration (TMA: any unsplit tile but 192-row ones, which
    # take only the staged gather; staged: normal mode).
    configs |= {c.with_gather_mode("tma") for c in configs if c.split_k == 1 and c.block_m != 192}
    configs |= {dataclasses.replace(c, gather_mode="staged") for c in configs if c.split_k == 1 and not c.swap_ab}
    for cfg in sorted(configs, key=lambda c: c.kernel_name):
        err = _check(ids, len(EDGE), 320, 200, dtype=dtype, silu=silu, config=cfg)
        assert err < TOL, (cfg.kernel_name, err)


@pytest.mark.parametrize(
    "counts",
    [[0] * 7 + [300], [1000], [1] + [0] * 383, [0] * 100 + [5] + [0] * 155],
    ids=["one-of-eight", "single-expert", "first-of-384", "one-of-256"],
)
def test_all_tokens_on_one_expert(counts: list[int]) -> None:
    ids = ids_with_counts(counts)
    assert _check(ids, len(counts), 256, 192, silu=True) < TOL
    assert _check(ids, len(counts), 192, 128, gather=False) < TOL


@pytest.mark.parametrize("e", [1, 8, 60, 128, 256, 384])
@pytest.mark.parametrize("k", [1, 2, 4, 6, 8])
def test_experts_and_top_k(e: int, k: int) -> None:
    if k > e:
        pytest.skip("top-k larger than the number of experts")
    ids = uniform_ids(97, e, k)
    assert _check(ids, e, 256, 128, silu=True, seed=e * 10 + k) < TOL


@pytest.mark.parametrize(("h", "i"), [(2880, 1408), (2880, 2880), (200, 72)])
@pytest.mark.parametrize("t", [3, 300])
def test_k_and_n_not_multiples_of_64(h: int, i: int, t: int) -> None:
    ids = uniform_ids(t, 16, 4)
    assert _check(ids, 16, 2 * i, h, silu=True) < TOL
    assert _check(ids, 16, h, i, gather=False) < TOL


def test_skipped_ids_rows_never_written() -> None:
    ids = uniform_ids(50, 8, 2)
    ids[::3, 1] = -1  # not on this rank
    ids[5, 0] = 99  # out of range: skipped on the GPU
    p = moe.route_plan(ids, 8)
    a = torch.randn(50, 64, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(8, 64, 64, device="cuda", dtype=torch.bfloat16)
    out = torch.full((100, 64), 7.0, device="cuda", dtype=torch.bfloat16)
    moe.grouped_gemm(a, w, p, out=out)
    m = int(p.expert_starts[-1])
    assert m == 100 - 17 - 1
    assert (out[m:] == 7.0).all()
    assert rel_err(out[:m], moe.grouped_gemm_reference(a, w, p)[:m]) < TOL


def test_deterministic() -> None:
    ids = uniform_ids(1000, 64, 6)
    p = moe.route_plan(ids, 64)
    a = torch.randn(1000, 512, device="cuda", dtype=torch.bfloat16)
    w = moe.pack_gate_up(torch.randn(64, 512, 512, device="cuda", dtype=torch.bfloat16))
    first = moe.grouped_gemm(a, w, p, activation="silu_and_mul")
    second = moe.grouped_gemm(a, w, moe.route_plan(ids.clone(), 64), activation="silu_and_mul")
    assert torch.equal(first, second)


def test_cuda_graph_replay_with_new_routing() -> None:
    _capture_layer_and_replay(32, 64, 4, 256, 128)


def _replay_with_new_routing(graph, y, ids, a, w1, w2, e: int, replays: int) -> None:  # type: ignore[no-untyped-def]
    """Three times: new routing ids and inputs in place, ``replays`` replays of the captured
    layer (gate/up then down), and its output ``y`` against the float32 reference."""
    t, k = ids.shape
    for seed in range(3):
        ids.copy_(uniform_ids(t, e, k, generator=torch.Generator(device="cuda").manual_seed(seed)))
        a.normal_()
        y.fill_(float("nan"))
        for _ in range(replays):
            graph.replay()
        torch.cuda.synchronize()
        fresh = moe.route_plan(ids, e)
        ref = moe.grouped_gemm_reference(moe.grouped_gemm_reference(a, w1, fresh, activation="silu_and_mul"),
                                         w2, fresh, gather=False)
        assert rel_err(y, ref) < TOL


def _capture_layer_and_replay(e: int, t: int, k: int, h: int, i: int, *, up=None, down=None,  # type: ignore[no-untyped-def]
                              programmatic: bool = False, replays: int = 1, ids=None, seed: int = 0) -> None:
    """Capture routing, gate/up (``up``: its config) and down (``down``) in one CUDA graph on
    fresh data (``ids``: the routing at capture, default uniform), then replay it with new
    routing written in place (:func:`_replay_with_new_routing`)."""
    ids = uniform_ids(t, e, k) if ids is None else ids
    a = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
    w1 = moe.pack_gate_up(_weights(e, 2 * i, h, torch.bfloat16, seed=seed))
    w2 = _weights(e, h, i, torch.bfloat16, seed=seed + 1)

    def layer() -> torch.Tensor:
        p = moe.route_plan(ids, e)
        x = moe.grouped_gemm(a, w1, p, activation="silu_and_mul", config=up)
        return moe.grouped_gemm(x, w2, p, gather=False, config=down, programmatic_launch=programmatic)

    layer()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y = layer()
    _replay_with_new_routing(graph, y, ids, a, w1, w2, e, replays=replays)


@pytest.mark.slow
def test_offsets_past_int32() -> None:
    # T * k * H > 2^31 elements on the gathered input side and the grouped output side.
    t, k, e, h, i = 40_000, 8, 8, 7168, 64
    ids = uniform_ids(t, e, k)
    p = moe.route_plan(ids, e)
    assert t * k * h > 2**31
    x = torch.randn(p.num_rows, i, device="cuda", dtype=torch.bfloat16)
    w2 = torch.randn(e, h, i, device="cuda", dtype=torch.bfloat16) / i**0.5
    out = moe.grouped_gemm(x, w2, p, gather=False)
    for lo in (0, p.num_rows - 2000):
        rows = slice(lo, lo + 2000)
        e_of = torch.searchsorted(p.expert_starts, torch.arange(lo, lo + 2000, device="cuda"), right=True) - 1
        ref = torch.einsum("rk,rnk->rn", x[rows].float(), w2[e_of].float())
        assert rel_err(out[rows], ref) < TOL
    del out, x
    torch.cuda.empty_cache()


def test_route_plan_on_gpu_equals_cpu() -> None:
    ids = uniform_ids(3000, 60, 4)
    ids[::7, 2] = -1
    gpu = moe.route_plan(ids, 60)
    cpu = moe.route_plan(ids.cpu(), 60)
    for name in ("expert_counts", "expert_starts", "slot_to_row", "task_expert", "task_rows", "task_starts"):
        assert torch.equal(getattr(gpu, name).cpu(), getattr(cpu, name)), name
    m = int(cpu.expert_starts[-1])
    assert torch.equal(gpu.gather_idx[:m].cpu(), cpu.gather_idx[:m])


def test_gpu_input_errors() -> None:
    ids = uniform_ids(4, 8, 2)
    p = moe.route_plan(ids, 8)
    a = torch.randn(4, 64, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(8, 64, 64, device="cuda", dtype=torch.bfloat16)
    with pytest.raises(sb.InvalidArgumentError, match="one device"):
        moe.grouped_gemm(a.cpu(), w, p)
    with pytest.raises(sb.InvalidArgumentError, match="must match"):
        moe.grouped_gemm(a, w, p, config=moe.GemmConfig(dtype="fp16"))


# ---------------------------------------------------------------------------------------------
# Split-K (swap mode): forced configurations against the reference, determinism, graphs
# ---------------------------------------------------------------------------------------------


def _split_cfg(bm: int, bn: int, sk: int, *, dtype: torch.dtype = torch.bfloat16, silu: bool = False,
               gather: bool = True) -> moe.GemmConfig:
    return moe.GemmConfig(block_m=bm, block_n=bn, stages=12 if bm <= 16 else 8, swap_ab=True, split_k=sk,
                          dtype="bf16" if dtype == torch.bfloat16 else "fp16",
                          activation="silu_and_mul" if silu else None, gather=gather)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("silu", [False, True])
@pytest.mark.parametrize("t", [1, 2, 5, 16])
def test_split_k_matches_reference(dtype: torch.dtype, silu: bool, t: int) -> None:
    ids = uniform_ids(t, 16, 4)
    # K = 2880 and 200 are not multiples of 64; N = 320 is not a multiple of 128.
    for (bm, bn, sk), (n, k) in zip(((8, 128, 4), (8, 64, 3), (16, 128, 2), (16, 64, 4)),
                                    ((320, 2880), (1536, 2048), (256, 200), (320, 200))):
        for gather in (True, False):
            cfg = _split_cfg(bm, bn, sk, dtype=dtype, silu=silu, gather=gather)
            err = _check(ids, 16, n, k, dtype=dtype, gather=gather, silu=silu, config=cfg, seed=t * 7 + sk)
            assert err < TOL, (cfg.kernel_name, n, k, err)


@pytest.mark.parametrize("silu", [False, True])
def test_split_k_edge_counts(silu: bool) -> None:
    ids = ids_with_counts(EDGE)  # several m-blocks per task, empty tasks, counts at block edges
    for bm, bn, sk in ((8, 128, 4), (8, 64, 3), (16, 64, 4), (48, 128, 3)):
        for gather in (True, False):
            cfg = _split_cfg(bm, bn, sk, silu=silu, gather=gather)
            err = _check(ids, len(EDGE), 320, 200, gather=gather, silu=silu, config=cfg)
            assert err < TOL, (cfg.kernel_name, err)


def test_split_k_bitwise_deterministic_and_counters_left_zero() -> None:
    from staticbatch_moe import gemm as gemm_mod

    h, i, e, k = MODELS["Qwen3-30B-A3B"]
    for t in (1, 16):
        ids = uniform_ids(t, e, k)
        p = moe.route_plan(ids, e)
        a = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        w = moe.pack_gate_up(_weights(e, 2 * i, h, torch.bfloat16, seed=t))
        cfg = _split_cfg(8, 128, 4, silu=True)
        runs = []
        for _ in range(3):
            out = torch.full((p.num_rows, i), float("nan"), dtype=torch.bfloat16, device="cuda")
            runs.append(moe.grouped_gemm(a, w, p, activation="silu_and_mul", out=out, config=cfg))
        assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0], runs[2])
        assert rel_err(runs[0], moe.grouped_gemm_reference(a, w, p, activation="silu_and_mul")) < TOL
    torch.cuda.synchronize()
    for (use, _, _), buf in gemm_mod._stream_counters.items():
        if use == "splitk":
            assert int(buf.abs().sum()) == 0


def test_split_k_refuses_more_splits_than_k_steps() -> None:
    ids = uniform_ids(4, 8, 2)
    p = moe.route_plan(ids, 8)
    a = torch.randn(4, 128, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(8, 128, 128, device="cuda", dtype=torch.bfloat16)
    with pytest.raises(sb.InvalidArgumentError, match="split_k"):
        moe.grouped_gemm(a, w, p, config=_split_cfg(8, 128, 4))


@pytest.mark.parametrize("warm_capture_stream", [False, True], ids=["fresh-counters", "cached-counters"])
def test_split_k_cuda_graph_replay(warm_capture_stream: bool) -> None:
    e, t, k, h, i = 16, 3, 4, 2880, 384
    ids = uniform_ids(t, e, k)
    a = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
    w1 = moe.pack_gate_up(_weights(e, 2 * i, h, torch.bfloat16, seed=1))
    w2 = _weights(e, h, i, torch.bfloat16, seed=2)
    c1 = _split_cfg(8, 128, 4, silu=True)
    c2 = _split_cfg(8, 64, 2, gather=False)

    def layer() -> torch.Tensor:
        p = moe.route_plan(ids, e)
        x = moe.grouped_gemm(a, w1, p, activation="silu_and_mul", config=c1)
        return moe.grouped_gemm(x, w2, p, gather=False, config=c2)

    layer()
    stream = torch.cuda.Stream()
    if warm_capture_stream:  # the capture then uses the stream's cached counter buffer
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            layer()
        torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        y = layer()
    outs = []
    for seed in range(2):
        ids.copy_(uniform_ids(t, e, k, generator=torch.Generator(device="cuda").manual_seed(seed)))
        a.normal_()
        y.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        fresh = moe.route_plan(ids, e)
        ref = moe.grouped_gemm_reference(moe.grouped_gemm_reference(a, w1, fresh, activation="silu_and_mul"),
                                         w2, fresh, gather=False)
        m = int(fresh.expert_starts[-1])
        assert rel_err(y[:m], ref[:m]) < TOL
        outs.append(y.clone())
        graph.replay()  # same inputs again: bit-identical
        torch.cuda.synchronize()
        assert torch.equal(y, outs[-1])


# ---------------------------------------------------------------------------------------------
# Two-slice tiles (256-row tall tiles, 128-row ping-pong; 64-row slices skipped at run time):
# every skip pattern
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("silu", [False, True])
@pytest.mark.parametrize("k", [200, 2880])
def test_tall_tiles_every_slice_pattern(dtype: torch.dtype, silu: bool, k: int) -> None:
    from moe_cases import TALL_COUNTS, tall_configs

    _check_configs_on_counts(TALL_COUNTS, tall_configs(), dtype, silu, k)


def _check_configs_on_counts(counts: list[int], configs: list, dtype: torch.dtype, silu: bool, k: int) -> None:
    """Every configuration of ``configs`` in ``dtype`` with or without silu_and_mul, on a routing
    that gives expert e exactly counts[e] rows, against the reference (N = 320: the last weight
    block is partial for every width)."""
    ids = ids_with_counts(counts, seed=k)
    tag = "bf16" if dtype == torch.bfloat16 else "fp16"
    act = "silu_and_mul" if silu else None
    chosen = [c for c in configs if c.dtype == tag and c.activation == act]
    assert chosen
    for cfg in chosen:
        err = _check(ids, len(counts), 320, k, dtype=dtype, gather=cfg.gather, silu=silu, config=cfg, seed=k)
        assert err < TOL, (cfg.kernel_name, k, err)


def test_tall_tiles_bitwise_deterministic() -> None:
    e, t, top_k, h, i = 16, 1000, 4, 1024, 512  # ~250 rows per expert: tall tiles
    ids = uniform_ids(t, e, top_k)
    p = moe.route_plan(ids, e)
    a = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
    w1 = moe.pack_gate_up(_weights(e, 2 * i, h, torch.bfloat16, seed=3))
    w2 = _weights(e, h, i, torch.bfloat16, seed=4)
    up = moe.choose_config(p.num_rows, e, 2 * i, h, "bf16", "silu_and_mul", True)
    assert up.block_m == 256 or not moe._gemm_config.USE_TALL_TILES
    up = dataclasses.replace(up, block_m=256, block_n=128, stages=4, pingpong=False)
    down = moe.GemmConfig(block_m=256, block_n=128, stages=4)
    runs = []
    for _ in range(3):
        x = torch.full((p.num_rows, i), float("nan"), dtype=torch.bfloat16, device="cuda")
        moe.grouped_gemm(a, w1, p, activation="silu_and_mul", out=x, config=up)
        y = torch.full((p.num_rows, h), float("nan"), dtype=torch.bfloat16, device="cuda")
        runs.append((x, moe.grouped_gemm(x, w2, p, gather=False, out=y, config=down)))
    for x, y in runs[1:]:
        assert torch.equal(x, runs[0][0]) and torch.equal(y, runs[0][1])
    x, y = runs[0]
    assert rel_err(x, moe.grouped_gemm_reference(a, w1, p, activation="silu_and_mul")) < TOL
    assert rel_err(y, moe.grouped_gemm_reference(x, w2, p, gather=False)) < TOL


# ---------------------------------------------------------------------------------------------
# Fitted swap tiles (swap mode, 128-256 tokens: rows split evenly, wgmma N chosen per tile)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("silu", [False, True])
@pytest.mark.parametrize("k", [200, 2880])
def test_fitted_swap_tiles_every_split(dtype: torch.dtype, silu: bool, k: int) -> None:
    from moe_cases import FITTED_COUNTS, fitted_configs

    _check_configs_on_counts(FITTED_COUNTS, fitted_configs(), dtype, silu, k)


def test_fitted_swap_tiles_bitwise_deterministic_and_equal_to_plain_swap() -> None:
    """Same input twice: identical bits. A fitted tile sums the same K steps in the same order as a
    64-token swap tile, so the outputs are bit-identical to it too."""
    from moe_cases import FITTED_COUNTS

    ids = ids_with_counts(FITTED_COUNTS, seed=5)
    e, n, k = len(FITTED_COUNTS), 384, 1000
    p = moe.route_plan(ids, e)
    a = torch.randn(ids.shape[0], k, device="cuda", dtype=torch.bfloat16)
    w = moe.pack_gate_up(_weights(e, n, k, torch.bfloat16, seed=6))
    outs = []
    for bm, mode in ((128, "staged"), (256, "staged"), (256, "cp_async"), (64, "cp_async"), (256, "staged")):
        cfg = moe.GemmConfig(block_m=bm, block_n=128, stages=moe._gemm_config._max_stages(bm, 128, 12, swap_ab=True),
                             swap_ab=True, activation="silu_and_mul", gather=True, gather_mode=mode)
        out = torch.full((p.num_rows, n // 2), float("nan"), dtype=torch.bfloat16, device="cuda")
        outs.append(moe.grouped_gemm(a, w, p, activation="silu_and_mul", out=out, config=cfg))
    for o in outs[1:]:
        assert torch.equal(o, outs[0])
    assert rel_err(outs[0], moe.grouped_gemm_reference(a, w, p, activation="silu_and_mul")) < TOL


# ---------------------------------------------------------------------------------------------
# Staged gather (gather_mode="staged": rows copied to a workspace, grid barrier, then TMA)
# ---------------------------------------------------------------------------------------------


def _staged(block_m: int = 128, block_n: int = 256, silu: bool = True, pingpong: bool = False) -> moe.GemmConfig:
    from staticbatch_moe._gemm_config import _max_stages

    return moe.GemmConfig(block_m=block_m, block_n=block_n, stages=_max_stages(block_m, block_n, 6, pingpong=pingpong),
                          activation="silu_and_mul" if silu else None, gather=True, gather_mode="staged",
                          pingpong=pingpong)


def test_staged_gather_is_chosen_for_large_experts() -> None:
    cfg = moe.choose_config(16384 * 8, 128, 1536, 2048, "bf16", "silu_and_mul", True)
    assert cfg.gather_mode == "staged" and not cfg.swap_ab
    assert moe.choose_config(16 * 8, 128, 1536, 2048, "bf16", "silu_and_mul", True).gather_mode == "cp_async"


@pytest.mark.parametrize("silu", [False, True])
@pytest.mark.parametrize("tiles", [(128, 256, False), (64, 256, True), (64, 128, False), (128, 128, False)])
def test_staged_gather_edge_counts(silu: bool, tiles: tuple[int, int, bool]) -> None:
    cfg = _staged(*tiles[:2], silu=silu, pingpong=tiles[2])
    for k in (200, 2880):
        err = _check(ids_with_counts(EDGE, seed=k), len(EDGE), 320, k, silu=silu, config=cfg, seed=k)
        assert err < TOL, (cfg.kernel_name, k, err)


def test_staged_gather_bitwise_repeatable_and_barrier_left_zero() -> None:
    from staticbatch_moe import gemm as gemm_mod

    e, t, k, h, i = 16, 3000, 4, 1024, 512
    ids = uniform_ids(t, e, k)
    p = moe.route_plan(ids, e)
    a = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
    w = moe.pack_gate_up(_weights(e, 2 * i, h, torch.bfloat16, seed=5))
    runs = [moe.grouped_gemm(a, w, p, activation="silu_and_mul", config=_staged()) for _ in range(4)]
    assert all(torch.equal(runs[0], r) for r in runs[1:])
    assert rel_err(runs[0], moe.grouped_gemm_reference(a, w, p, activation="silu_and_mul")) < TOL
    torch.cuda.synchronize()
    barriers = [b for (use, _, _), b in gemm_mod._stream_counters.items() if use == "barrier"]
    assert barriers and all(int(b[0]) == 0 for b in barriers)
    assert any(int(b[1]) >= 4 for b in barriers)  # the generation moved once per launch


def _spy_launches(monkeypatch, flag: str) -> list[tuple[str, bool]]:  # type: ignore[no-untyped-def]
    """Records (kernel name, the launch's keyword ``flag``) for every kernel launch from now on."""
    import staticbatch._launch as launch_mod

    seen: list[tuple[str, bool]] = []
    real = launch_mod.LoadedKernel.launch

    def spy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append((self.compiled.name, bool(kwargs.get(flag, False))))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(launch_mod.LoadedKernel, "launch", spy)
    return seen


def test_grid_barrier_kernels_launch_cooperatively(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The staged gather (grid barrier) is launched cooperatively, so that the driver refuses a
    grid that cannot be resident at once; kernels without a grid barrier are not."""
    seen = _spy_launches(monkeypatch, "cooperative")
    e, t, k, h, i = 16, 1000, 4, 1024, 512
    p = moe.route_plan(uniform_ids(t, e, k), e)
    a = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
    w = moe.pack_gate_up(_weights(e, 2 * i, h, torch.bfloat16, seed=7))
    for cfg in (_staged(), dataclasses.replace(_staged(), cluster=2), _staged(64, 256, pingpong=True),
                cfg_plain := moe.GemmConfig(block_m=128, block_n=256, stages=4, activation="silu_and_mul", gather=True)):
        seen.clear()
        out = moe.grouped_gemm(a, w, p, activation="silu_and_mul", config=cfg)
        assert [c for name, c in seen if name == cfg.kernel_name] == [cfg is not cfg_plain], (cfg.kernel_name, seen)
        assert rel_err(out, moe.grouped_gemm_reference(a, w, p, activation="silu_and_mul")) < TOL


def test_programmatic_launch_follows_the_rule_with_heuristic_tiles(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """programmatic_launch=True with the heuristic's tiles: taken for swap-mode tiles (decode),
    not for 64-row ping-pong ones (programmatic_pays); with an explicit config always taken.
    The output is the same either way."""
    from staticbatch_moe import _gemm_config as cfgmod

    seen = _spy_launches(monkeypatch, "programmatic")
    e, k, h, i = 8, 2, 1024, 512
    for t, pays in ((4, True), (600, False)):
        p = moe.route_plan(uniform_ids(t, e, k), e)
        mid = torch.randn(t * k, i, device="cuda", dtype=torch.bfloat16)
        w2 = _weights(e, h, i, torch.bfloat16, seed=t)
        chosen = moe.choose_config(t * k, e, h, i, "bf16", None, False)
        assert cfgmod.programmatic_pays(chosen) == pays, chosen
        ref = moe.grouped_gemm_reference(mid, w2, p, gather=False)
        moe.grouped_gemm(mid, w2, p, gather=False)  # builds the plan's tile offsets (else never programmatic)
        for config, want in ((None, pays), (chosen, True)):
            seen.clear()
            out = moe.grouped_gemm(mid, w2, p, gather=False, config=config, programmatic_launch=True)
            assert [prog for name, prog in seen if name == chosen.kernel_name] == [want], (t, config, seen)
            assert rel_err(out, ref) < TOL


def test_later_class_launches_follow_the_rule_with_heuristic_tiles(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The heuristic's classes at a ping-pong average of 256 rows (128-row clustered tiles above 320
    rows, empty under uniform routing, then 64-row ping-pong tiles): the second launch is not a
    programmatic dependent (programmatic_pays), while with the same classes given explicitly it
    is. Same output, matching the reference."""
    seen = _spy_launches(monkeypatch, "programmatic")
    e, k, h, i, t = 32, 4, 2048, 2048, 2048
    classes = moe.choose_tile_classes(t * k, e, h, i, "bf16", None, False, num_tokens=t)
    assert len(classes) == 2 and classes[0].config.cluster == 2 and classes[1].config.pingpong, classes
    p = moe.route_plan(uniform_ids(t, e, k), e)
    mid = torch.randn(t * k, i, device="cuda", dtype=torch.bfloat16)
    w2 = _weights(e, h, i, torch.bfloat16, seed=t)
    ref = moe.grouped_gemm_reference(mid, w2, p, gather=False)
    moe.grouped_gemm(mid, w2, p, gather=False)  # builds the plan's tile offsets (else never programmatic)
    outs = []
    for config, want in ((None, [True, False]), (classes, [True, True])):
        seen.clear()
        outs.append(moe.grouped_gemm(mid, w2, p, gather=False, config=config, programmatic_launch=True))
        assert [prog for _, prog in seen] == want, (config, seen)
    assert rel_err(outs[0], ref) < TOL and torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("silu", [False, True])
def test_token_map_not_shared_by_tiles_of_the_same_height_and_other_box(silu: bool) -> None:
    """A 128 x 256 tile (one 128-row token box) and a 128-row ping-pong tile (64-row boxes) on the
    same rows, alternately: each launch gets its own token map. (Sharing one, cached by block_m
    alone, left the full barriers expecting bytes that never came: a hang.)"""
    e, t, k, h, i = 8, 600, 2, 1024, 256
    p = moe.route_plan(uniform_ids(t, e, k), e)
    if silu:
        a = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
        w = moe.pack_gate_up(_weights(e, 2 * i, h, torch.bfloat16, seed=13))
        ref = moe.grouped_gemm_reference(a, w, p, activation="silu_and_mul")
    else:
        a = torch.randn(p.num_rows, i, device="cuda", dtype=torch.bfloat16)
        w = _weights(e, h, i, torch.bfloat16, seed=13)
        ref = moe.grouped_gemm_reference(a, w, p, gather=False)
    act = "silu_and_mul" if silu else None
    tall = moe.GemmConfig(block_m=128, block_n=256, stages=4, activation=act, gather=silu,
                          gather_mode="staged" if silu else "cp_async")
    pp = moe.GemmConfig(block_m=128, block_n=192, stages=4, pingpong=True, activation=act, gather=silu,
                        gather_mode="staged" if silu else "cp_async")
    for cfg in (tall, pp, tall, pp):
        out = torch.full_like(ref, float("nan"), dtype=torch.bfloat16)
        moe.grouped_gemm(a, w, p, gather=silu, activation=act, out=out, config=cfg)
        torch.cuda.synchronize()
        assert rel_err(out, ref) < TOL, cfg.kernel_name


def test_staged_gather_cuda_graph_replay() -> None:
    # Two replays each: the barrier's generation moves on, the result does not.
    _capture_layer_and_replay(8, 2048, 2, 512, 256, up=_staged(), replays=2, seed=6)


@pytest.mark.slow
def test_staged_gather_offsets_past_int32() -> None:
    # The workspace holds T * k * H > 2^31 elements: 64-bit row offsets in the copy and the TMA map.
    t, k, e, h, i = 40_000, 8, 8, 7168, 64
    ids = uniform_ids(t, e, k)
    p = moe.route_plan(ids, e)
    assert p.num_rows * h > 2**31
    a = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(e, 2 * i, h, device="cuda", dtype=torch.bfloat16) / h**0.5
    cfg = moe.GemmConfig(block_m=128, block_n=128, stages=6, gather=True, gather_mode="staged")
    out = moe.grouped_gemm(a, w, p, config=cfg)
    src = p.gather_idx.long()
    for lo in (0, p.num_rows - 2000):
        e_of = torch.searchsorted(p.expert_starts, torch.arange(lo, lo + 2000, device="cuda"), right=True) - 1
        ref = torch.einsum("rk,rnk->rn", a[src[lo:lo + 2000]].float(), w[e_of].float())
        assert rel_err(out[lo:lo + 2000], ref) < TOL
    del out
    torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------
# 2-CTA clusters (cluster=2: neighbouring tiles side by side, the shared weight tile multicast)
# ---------------------------------------------------------------------------------------------

CLUSTER_TILES = [(128, 256, False), (64, 256, True), (128, 128, False), (64, 128, True), (128, 192, False),
                 (64, 192, True)]
# Odd and even tile totals, fewer tiles than blocks, pairs that straddle two tasks or two n-blocks.
CLUSTER_COUNTS = {"edge": EDGE, "one-row": [1], "one-expert": [300], "odd": [129, 0, 5], "skew": [3000, 1, 1, 0, 40]}


def _check_pair_bitwise(silu: bool, configs, shapes, seed_of) -> None:  # type: ignore[no-untyped-def]
    """For each (k, n) of ``shapes`` and each CLUSTER_COUNTS case: the first configuration of
    ``configs`` (two) matches the float32 reference, writes every row, and equals the second
    bitwise. ``seed_of(k)``: the routing's seed."""
    for k, n in shapes:
        for case, counts in CLUSTER_COUNTS.items():
            ids = ids_with_counts(counts, seed=seed_of(k))
            e = len(counts)
            p = moe.route_plan(ids, e)
            g = torch.Generator(device="cuda").manual_seed(k)
            a = torch.randn(ids.shape[0] if silu else p.num_rows, k, device="cuda", generator=g).to(torch.bfloat16)
            w = _weights(e, n, k, torch.bfloat16, seed=k)
            wt = moe.pack_gate_up(w) if silu else w
            act = "silu_and_mul" if silu else None
            outs = []
            for cfg in configs:
                out = torch.full((p.num_rows, n // 2 if silu else n), float("nan"), dtype=torch.bfloat16, device="cuda")
                moe.grouped_gemm(a, wt, p, gather=silu, activation=act, out=out, config=cfg)
                outs.append(out)
            ref = moe.grouped_gemm_reference(a, wt, p, gather=silu, activation=act)
            assert not torch.isnan(outs[0]).any(), (case, k)
            assert rel_err(outs[0], ref) < TOL, (case, k)
            assert torch.equal(outs[0], outs[1]), (case, k)


@pytest.mark.parametrize("silu", [False, True], ids=["down", "gate-up-staged"])
@pytest.mark.parametrize("tiles", CLUSTER_TILES, ids=["128x256", "pp64x256", "128x128", "pp64x128", "128x192", "pp64x192"])
def test_cluster_matches_reference_and_unclustered_bitwise(silu: bool, tiles: tuple[int, int, bool]) -> None:
    """Every tile is computed exactly as without a cluster (the multicast only moves bytes)."""
    from moe_cases import cluster_config

    _check_pair_bitwise(silu, [cluster_config(*tiles, silu=silu, cluster=c) for c in (2, 1)],
                        [(200, 320), (2880, 320)], lambda k: k)


def test_cluster_cuda_graph_replay() -> None:
    from moe_cases import cluster_config

    _capture_layer_and_replay(8, 2048, 2, 512, 256, up=cluster_config(128, 256, False, silu=True),
                              down=cluster_config(64, 256, True, silu=False), programmatic=True, replays=2, seed=10)


# ---------------------------------------------------------------------------------------------
# 192-row cooperative tiles (three consumer warp groups, a dead 64-row group skipped)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("silu", [False, True], ids=["down", "gate-up-staged"])
@pytest.mark.parametrize("block_n", [192, 128])
@pytest.mark.parametrize("cluster", [1, 2])
def test_triple_tiles_match_reference_and_128_row_tiles_bitwise(silu: bool, block_n: int, cluster: int) -> None:
    """A 192-row tile computes every output element as a 128-row tile of the same width does
    (same K order), on edge counts, one row, one expert, odd totals and skew, K = 200 and 2880."""
    from moe_cases import cluster_config, triple_configs

    (cfg,) = [c for c in triple_configs() if c.block_n == block_n and c.dtype == "bf16"
              and (c.activation is not None) == silu and c.cluster == cluster]
    _check_pair_bitwise(silu, [cfg, cluster_config(128, block_n, False, silu=silu, cluster=1)],
                        [(200, 320), (2880, 320)], lambda k: k + 1)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("silu", [False, True])
def test_triple_tiles_every_dead_group_pattern(dtype: torch.dtype, silu: bool) -> None:
    from moe_cases import TALL_COUNTS, triple_configs

    _check_configs_on_counts(TALL_COUNTS, triple_configs(), dtype, silu, 200)


# ---------------------------------------------------------------------------------------------
# Store warps (store_warps=True: the producer's idle warps store the staged output tiles)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("silu", [False, True], ids=["down", "gate-up-staged"])
@pytest.mark.parametrize("block_n", [256, 192, 128, 96])
@pytest.mark.parametrize("cluster", [1, 2])
def test_store_warps_match_reference_and_inline_epilogue_bitwise(silu: bool, block_n: int, cluster: int) -> None:
    """Store warps only move the bytes: every tile's output equals the consumers' own stores,
    at edge counts, tiles past the task's rows, N not a multiple of the tile, a block with
    one tile or many."""
    from moe_cases import store_warps_config

    _check_pair_bitwise(silu, [store_warps_config(block_n, silu=silu, cluster=cluster, store_warps=sw)
                               for sw in (True, False)],
                        [(200, 320), (2880, 1424)], lambda k: k + block_n)


@pytest.mark.parametrize("top_k", [1, 2, 8])
@pytest.mark.parametrize("tiles", [(128, 256, False), (64, 256, True), None],
                         ids=["128x256-c2", "pp64x256", "128x256-c2-dynamic"])
def test_staged_copy_by_token_matches_by_row_bitwise(monkeypatch, top_k: int, tiles: tuple[int, int, bool] | None) -> None:  # type: ignore[no-untyped-def]
    """The staged gather's token-by-token copy (forced here, whatever the token count) fills the
    same rows as the row-by-row copy: one token to 3000 tokens over 60 experts, skipped (-1)
    ids, K = 200 and 2880 (not multiples of 64). Each launch is spied on, so that the copy that
    ran is known: the token map goes to the kernel exactly when the token-by-token copy is asked
    for, with static and with dynamic tiles alike (from 9031544 to 30422ef static launches lost
    it, which the equal outputs could not show)."""
    from moe_cases import cluster_config, dynamic_config

    import staticbatch_moe.gemm as gemm_mod

    if tiles is None:
        cfg = dynamic_config(256, silu=True)
    else:
        cfg = cluster_config(*tiles, silu=True, cluster=2 if tiles[0] == 128 else 1)
    kernel, _ = gemm_mod._kernel_for(cfg, torch.cuda.current_device())
    passed: list = []
    real_launch = kernel.launch

    def spy(grid, threads, smem, args, **kw):  # type: ignore[no-untyped-def]
        passed.append(args[15])  # by_token: the plan's slot_to_row, or None (row by row)
        return real_launch(grid, threads, smem, args, **kw)

    monkeypatch.setattr(kernel, "launch", spy)
    for t, e, k in ((700, 8, 200), (3000, 60, 2880), (1, 8, 512)):
        ids = uniform_ids(t, e, top_k).clone()
        ids[::7, 0] = -1  # not on this rank: the slot has no row
        p = moe.route_plan(ids, e)
        a = torch.randn(t, k, device="cuda").to(torch.bfloat16)
        w = moe.pack_gate_up(_weights(e, 320, k, torch.bfloat16, seed=k))
        outs = []
        for by_token in (True, False):
            monkeypatch.setattr(gemm_mod, "STAGE_BY_TOKEN", by_token)
            monkeypatch.setattr(gemm_mod, "_stage_units_by_token", lambda num_tokens, k: 1 << 30)
            out = torch.full((p.num_rows, 160), float("nan"), dtype=torch.bfloat16, device="cuda")
            passed.clear()
            moe.grouped_gemm(a, w, p, activation="silu_and_mul", out=out, config=cfg)
            assert len(passed) == 1, (t, e, k, len(passed))
            if by_token:
                assert passed[0] is p.slot_to_row, (t, e, k)
            else:
                assert passed[0] is None, (t, e, k)
            outs.append(out)
        valid = int(p.expert_starts[-1])
        ref = moe.grouped_gemm_reference(a, w, p, activation="silu_and_mul")
        assert not torch.isnan(outs[0][:valid]).any(), (t, e, k)
        assert rel_err(outs[0][:valid], ref[:valid]) < TOL, (t, e, k)
        assert torch.equal(outs[0][:valid], outs[1][:valid]), (t, e, k)


def test_store_warps_fp16_and_graph_replay() -> None:
    from moe_cases import store_warps_config

    ids = uniform_ids(700, 8, 2)
    p = moe.route_plan(ids, 8)
    a = torch.randn(p.num_rows, 512, device="cuda", dtype=torch.float16)
    w = _weights(8, 768, 512, torch.float16, seed=3)
    out = torch.full((p.num_rows, 768), float("nan"), dtype=torch.float16, device="cuda")
    moe.grouped_gemm(a, w, p, gather=False, out=out, config=store_warps_config(256, silu=False, dtype="fp16"))
    assert rel_err(out, moe.grouped_gemm_reference(a, w, p, gather=False)) < TOL
    _capture_layer_and_replay(8, 2048, 2, 512, 256, up=store_warps_config(256, silu=True),
                              down=store_warps_config(256, silu=False), programmatic=True, replays=2, seed=11)


# ---------------------------------------------------------------------------------------------
# Dynamic tiles (dynamic=True: the blocks take their tiles from a global counter)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("silu", [False, True], ids=["down", "gate-up-staged"])
@pytest.mark.parametrize("block_n", [256, 192])
@pytest.mark.parametrize("cluster", [1, 2])
@pytest.mark.parametrize("store_warps", [False, True])
def test_dynamic_tiles_match_reference_and_static_bitwise(silu: bool, block_n: int, cluster: int,
                                                          store_warps: bool) -> None:
    """Which block runs a tile does not change how it is computed: the dynamic order gives the
    static order's bits, at edge counts, odd tile totals (a cluster's last pair half empty),
    fewer tiles than blocks, one expert with most rows."""
    from moe_cases import dynamic_config

    dyn = dynamic_config(block_n, silu=silu, cluster=cluster, store_warps=store_warps)
    _check_pair_bitwise(silu, [dyn, dataclasses.replace(dyn, dynamic=False)], [(200, 320), (2880, 1424)],
                        lambda k: k + block_n + cluster)


@pytest.mark.parametrize("cluster", [1, 2])
def test_dynamic_tiles_many_per_block_counters_left_zero(cluster: int) -> None:
    """About 15 tiles per block (the tile ring wraps many times), launched four times in a row:
    identical bits each time, equal to the static order, and the tile counter and the count of
    finished fetchers back at zero after every launch (the next launch starts from tile 0)."""
    from moe_cases import dynamic_config

    from staticbatch_moe import gemm as gemm_mod

    e, t, k, n, kk = 16, 8000, 2, 4096, 256
    p = moe.route_plan(uniform_ids(t, e, k), e)
    a = torch.randn(p.num_rows, kk, device="cuda", dtype=torch.bfloat16)
    w = _weights(e, n, kk, torch.bfloat16, seed=21)
    dyn = dynamic_config(256, silu=False, cluster=cluster)
    runs = [moe.grouped_gemm(a, w, p, gather=False, config=dyn) for _ in range(4)]
    torch.cuda.synchronize()
    static = moe.grouped_gemm(a, w, p, gather=False, config=dataclasses.replace(dyn, dynamic=False))
    assert all(torch.equal(runs[0], r) for r in runs[1:]) and torch.equal(runs[0], static)
    assert rel_err(runs[0], moe.grouped_gemm_reference(a, w, p, gather=False)) < TOL
    barriers = [b for (use, _, _), b in gemm_mod._stream_counters.items() if use == "barrier" and b.numel() >= 4]
    assert barriers and all(int(b[2]) == 0 and int(b[3]) == 0 for b in barriers)


def test_dynamic_tiles_graph_replay_and_programmatic() -> None:
    """Both GEMMs of a layer with dynamic tiles in one CUDA graph, the down GEMM a programmatic
    dependent of the gate/up GEMM (both use the stream's counters), replayed with new routing."""
    from moe_cases import dynamic_config

    _capture_layer_and_replay(8, 2048, 2, 512, 256, up=dynamic_config(256, silu=True),
                              down=dynamic_config(256, silu=False), programmatic=True, replays=3, seed=12)


# ---------------------------------------------------------------------------------------------
# Programmatic dependent launch of the down GEMM (programmatic_launch=True)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "down",
    [None, moe.GemmConfig(block_m=8, block_n=128, stages=12, swap_ab=True),
     moe.GemmConfig(block_m=64, block_n=256, stages=4, pingpong=True), moe.GemmConfig(block_m=128, block_n=256, stages=4),
     moe.GemmConfig(block_m=256, block_n=128, stages=4),
     moe.GemmConfig(block_m=8, block_n=64, stages=12, swap_ab=True, split_k=2),
     moe.GemmConfig(block_m=128, block_n=256, stages=4, cluster=2)],
    ids=["heuristic", "swap", "pingpong", "128x256", "tall", "split-k", "cluster"],
)
@pytest.mark.parametrize("graph", [False, True])
def test_programmatic_down_after_gate_up(down: moe.GemmConfig | None, graph: bool) -> None:
    """The down GEMM launched as a programmatic dependent reads the gate/up GEMM's output only
    once that has completed (a large gate/up, so an early read would see the NaN poison)."""
    e, t, k, h, i = 16, 1500, 4, 2048, 512
    ids = uniform_ids(t, e, k)
    p = moe.route_plan(ids, e)
    a = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
    w1 = moe.pack_gate_up(_weights(e, 2 * i, h, torch.bfloat16, seed=8))
    w2 = _weights(e, h, i, torch.bfloat16, seed=9)
    mid = torch.empty(p.num_rows, i, device="cuda", dtype=torch.bfloat16)
    y = torch.empty(p.num_rows, h, device="cuda", dtype=torch.bfloat16)

    def layer() -> None:
        mid.fill_(float("nan"))
        moe.grouped_gemm(a, w1, p, activation="silu_and_mul", out=mid)
        moe.grouped_gemm(mid, w2, p, gather=False, out=y, config=down, programmatic_launch=True)

    ref = moe.grouped_gemm_reference(moe.grouped_gemm_reference(a, w1, p, activation="silu_and_mul"), w2, p,
                                     gather=False)
    layer()
    torch.cuda.synchronize()
    if graph:
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            layer()
        y.fill_(float("nan"))
        g.replay()
        torch.cuda.synchronize()
    assert not torch.isnan(y).any()
    assert rel_err(y, ref) < TOL


# ---------------------------------------------------------------------------------------------
# Tile classes (a tile height per expert: one launch per class of experts by row count)
# ---------------------------------------------------------------------------------------------


def tile_classes(silu: bool, lo: int = 16, hi: int = 100) -> list[moe.TileClass]:
    """Swap tiles up to ``lo`` rows, 64-row ping-pong tiles up to ``hi``, clustered 128-row tiles
    above: gate/up with gather (staged in normal mode) or down without."""
    from moe_cases import cluster_config

    swap = moe.GemmConfig(block_m=16, block_n=128, stages=12, swap_ab=True,
                          activation="silu_and_mul" if silu else None, gather=silu)
    return [moe.TileClass(cluster_config(128, 256, False, silu=silu), hi, None),
            moe.TileClass(cluster_config(64, 256, True, silu=silu, cluster=1), lo, hi),
            moe.TileClass(swap, 0, lo)]


@pytest.mark.parametrize("silu", [False, True], ids=["down", "gate-up"])
@pytest.mark.parametrize("counts", [EDGE + [900, 300, 101, 100, 17, 16], [0, 5, 7, 0, 16, 1], [400, 0, 257],
                                    [0, 0, 0, 33]], ids=["all-classes", "only-swap", "only-clustered", "only-pp"])
def test_tile_classes_match_reference(silu: bool, counts: list[int]) -> None:
    """Every class boundary (16/17, 100/101), classes without experts (launches without tiles)."""
    ids = ids_with_counts(counts)
    assert _check(ids, len(counts), 320, 200, gather=silu, silu=silu, config=tile_classes(silu)) < TOL


@pytest.mark.parametrize("silu", [False, True], ids=["down", "gate-up"])
def test_heuristic_three_classes_with_wide_fitted_tiles(silu: bool) -> None:
    """About 128 rows per expert from 2048 tokens (large weights): the heuristic's three classes
    (128-row clustered tiles above 320 rows, 64-row ping-pong tiles above 160, fitted 160-token
    swap tiles below), on counts at every class and fitted-split edge, against the reference,
    then bit-identical to the same call with the classes given explicitly."""
    e, h, i = 64, 2048, 2048
    edges = [0, 1, 15, 16, 17, 127, 128, 129, 159, 160, 161, 176, 177, 319, 320, 321, 640, 1000]
    counts = edges + [90] * (e - len(edges))
    counts[-1] += 8192 - sum(counts)  # 8192 rows (top-1 ids: 8192 tokens), the last expert 276
    assert len(counts) == e and min(counts) >= 0 and sum(counts) == 8192
    ids = ids_with_counts(counts)
    n, k = (2 * i, h) if silu else (h, i)
    classes = moe.choose_tile_classes(8192, e, n, k, "bf16", "silu_and_mul" if silu else None, silu, num_tokens=8192)
    assert [(c.min_rows, c.max_rows) for c in classes] == [(320, None), (160, 320), (0, 160)], classes
    assert moe._gemm_config.is_fitted(classes[2].config) and classes[2].config.block_m == 160
    assert _check(ids, e, n, k, gather=silu, silu=silu, seed=5) < TOL
    p = moe.route_plan(ids, e)
    a = torch.randn(8192 if silu else p.num_rows, k, device="cuda", dtype=torch.bfloat16)
    w = _weights(e, n, k, torch.bfloat16, seed=6)
    w = moe.pack_gate_up(w) if silu else w
    act = "silu_and_mul" if silu else None
    outs = [moe.grouped_gemm(a, w, p, gather=silu, activation=act, config=c) for c in (None, classes)]
    assert torch.equal(outs[0], outs[1])


def test_tile_class_offsets_count_only_their_experts() -> None:
    counts = [0, 3, 16, 17, 64, 65, 100, 101, 500, 1]
    p = moe.route_plan(ids_with_counts(counts), len(counts))
    rows = p.task_rows.tolist()
    for lo, hi in ((0, 16), (16, 100), (100, None), (0, None), (64, 65)):
        got = p.tile_offsets(64, 128, 320, 1, rows=(lo, hi)).tolist()
        want = [0]
        for m in rows:
            inside = m > lo and (hi is None or m <= hi)
            want.append(want[-1] + (-(-m // 64) * 3 if inside else 0))
        assert got == want, (lo, hi)
        assert p.has_tile_offsets(64, 128, 320, 1, rows=(lo, hi))


def _skewed_ids(t: int, e: int, k: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator(device="cuda").manual_seed(seed)
    probs = 1.0 / torch.arange(1, e + 1, device="cuda", dtype=torch.float64) ** 1.2
    return torch.multinomial(probs.expand(t, e), k, replacement=False, generator=g).to(torch.int32)


def test_heuristic_tile_classes_on_skewed_routing_bitwise_repeatable() -> None:
    """The default heuristic at T >= 512 with few rows per expert runs two classes."""
    e, t, k, h, i = 256, 1024, 6, 256, 192
    classes = moe.choose_tile_classes(t * k, e, 2 * i, h, "bf16", "silu_and_mul", True, num_tokens=t)
    assert len(classes) == 2 and classes[0].config.pingpong and classes[1].config.swap_ab
    ids = _skewed_ids(t, e, k)
    assert max(moe.route_plan(ids, e).expert_counts.tolist()) > classes[0].min_rows  # the hot class has work
    assert _check(ids, e, 2 * i, h, silu=True) < TOL
    p = moe.route_plan(ids, e)
    a = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
    w1 = moe.pack_gate_up(_weights(e, 2 * i, h, torch.bfloat16, 3))
    w2 = _weights(e, h, i, torch.bfloat16, 4)
    y1 = moe.grouped_gemm(moe.grouped_gemm(a, w1, p, activation="silu_and_mul"), w2, p, gather=False)
    y2 = moe.grouped_gemm(moe.grouped_gemm(a, w1, p, activation="silu_and_mul"), w2, p, gather=False,
                          programmatic_launch=True)
    assert torch.equal(y1, y2)
    ref = moe.grouped_gemm_reference(moe.grouped_gemm_reference(a, w1, p, activation="silu_and_mul"), w2, p,
                                     gather=False)
    assert rel_err(y1, ref) < TOL


def test_tile_classes_cuda_graph_replay() -> None:
    """Captured with explicit classes on skewed routing, replayed with uniform routing in place
    (the 128-row class then finds no tiles)."""
    _capture_layer_and_replay(16, 600, 2, 256, 128, up=tile_classes(True), down=tile_classes(False),
                              programmatic=True, replays=2, ids=_skewed_ids(600, 16, 2), seed=12)


# ---------------------------------------------------------------- concurrent classes (hot and cold launches share the SMs)


def _concurrent_layer(t: int, routing: str, seed: int = 0):  # type: ignore[no-untyped-def]
    """GPT-OSS-120B's layer at ``t`` tokens on tiled weights, where both GEMMs' heuristic classes
    are a concurrent pair (128 x 192 clustered tiles, fitted 160-token swap tiles, both gathering
    through the staged copy in gate/up). ``routing``: "skewed", "uniform" or "hot-only" (every
    token to experts 0..k-1: no cold rows)."""
    h, i, e, k = MODELS["GPT-OSS-120B"]
    up = moe.choose_tile_classes(t * k, e, 2 * i, h, "bf16", "silu_and_mul", True, num_tokens=t, tiled_w=True)
    down = moe.choose_tile_classes(t * k, e, h, i, "bf16", None, False, num_tokens=t, tiled_w=True)
    assert moe._gemm_config.concurrent_pair(up) and moe._gemm_config.concurrent_pair(down), (up, down)
    assert up[1].config.gather_mode == "staged" and up[0].config.cluster == 2
    if routing == "skewed":
        ids = _skewed_ids(t, e, k, seed)
    elif routing == "uniform":
        ids = uniform_ids(t, e, k, generator=torch.Generator(device="cuda").manual_seed(seed))
    else:
        ids = torch.arange(k, device="cuda", dtype=torch.int32).repeat(t, 1)
    torch.manual_seed(seed)
    a = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
    w1 = moe.pack_gate_up(_weights(e, 2 * i, h, torch.bfloat16, seed=seed + 1), tiled=True)
    w2 = moe.pack_weight(_weights(e, h, i, torch.bfloat16, seed=seed + 2))
    return ids, a, w1, w2, e


@pytest.mark.parametrize("routing", ["skewed", "uniform", "hot-only"])
def test_concurrent_classes_match_sequential_bitwise(monkeypatch, routing: str) -> None:  # type: ignore[no-untyped-def]
    """The hot and cold launches sharing the SMs (the cold one a programmatic dependent that is
    not a cooperative launch, the hot one staging every row) give the bits of the same classes
    run one after the other, and match the float32 reference: with both classes busy, with the
    hot class empty (uniform routing: every SM to the cold launch) and with the cold class empty."""
    ids, a, w1, w2, e = _concurrent_layer(4096, routing)
    p = moe.route_plan(ids, e)
    counts = p.expert_counts.tolist()
    if routing == "skewed":
        assert max(counts) > 320 and 0 < min(c for c in counts if c) <= 160, counts
    seen = _spy_launches(monkeypatch, "programmatic")
    outs = []
    for concurrent in (True, False):
        monkeypatch.setattr(moe._gemm_config, "USE_CONCURRENT_CLASSES", concurrent)
        mid = torch.full((p.num_rows, w2.shape[2]), float("nan"), device="cuda", dtype=torch.bfloat16)
        out = torch.full((p.num_rows, w2.shape[1]), float("nan"), device="cuda", dtype=torch.bfloat16)
        seen.clear()
        moe.grouped_gemm(a, w1, p, activation="silu_and_mul", out=mid)
        moe.grouped_gemm(mid, w2, p, gather=False, out=out, programmatic_launch=True)
        launches = [prog for name, prog in seen if name.startswith("sb_grouped_gemm")]
        if concurrent:  # each cold launch is a programmatic dependent of its hot launch
            assert len(launches) == 4 and launches[1] and launches[3], seen
        outs.append((mid.clone(), out.clone()))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    ref_mid = moe.grouped_gemm_reference(a, w1, p, activation="silu_and_mul")
    assert rel_err(outs[0][0], ref_mid) < TOL
    assert rel_err(outs[0][1], moe.grouped_gemm_reference(ref_mid, w2, p, gather=False)) < TOL


@pytest.mark.parametrize("routing", ["uniform", "skewed"])
@pytest.mark.parametrize("tiled", [True, False])
def test_dynamic_fitted_tiles_match_static_bitwise(monkeypatch, routing: str, tiled: bool) -> None:  # type: ignore[no-untyped-def]
    """Qwen3-30B-A3B's layer at T = 1024, one class of fitted 128-token tiles in both GEMMs: taken
    from the tile counter (USE_DYNAMIC_FITTED) they give the bits of the static order, and the
    reference; the counters are left zero for the next launch (a second call agrees too)."""
    h, i, e, k = MODELS["Qwen3-30B-A3B"]
    t = 1024
    for n, kk, act, gather in ((2 * i, h, "silu_and_mul", True), (h, i, None, False)):
        classes = moe.choose_tile_classes(t * k, e, n, kk, "bf16", act, gather, num_tokens=t, tiled_w=tiled)
        assert len(classes) == 1 and moe._gemm_config.is_fitted(classes[0].config), classes
    ids = _skewed_ids(t, e, k, seed=5) if routing == "skewed" else uniform_ids(t, e, k)
    p = moe.route_plan(ids, e)
    a = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
    w1 = moe.pack_gate_up(_weights(e, 2 * i, h, torch.bfloat16, seed=6), tiled=tiled)
    w2 = _weights(e, h, i, torch.bfloat16, seed=7)
    w2 = moe.pack_weight(w2) if tiled else w2
    seen = _spy_launches(monkeypatch, "programmatic")
    outs = []
    for dynamic in (True, True, False):
        monkeypatch.setattr(moe._gemm_config, "USE_DYNAMIC_FITTED", dynamic)
        mid = torch.full((p.num_rows, i), float("nan"), device="cuda", dtype=torch.bfloat16)
        out = torch.full((p.num_rows, h), float("nan"), device="cuda", dtype=torch.bfloat16)
        seen.clear()
        moe.grouped_gemm(a, w1, p, activation="silu_and_mul", out=mid)
        moe.grouped_gemm(mid, w2, p, gather=False, out=out, programmatic_launch=True)
        assert all(name.endswith("_dyn_wt" if tiled else "_dyn") == dynamic for name, _ in seen
                   if name.startswith("sb_grouped_gemm")), seen
        outs.append((mid, out))
    for mid, out in outs[1:]:
        assert torch.equal(mid, outs[0][0]) and torch.equal(out, outs[0][1])
    ref_mid = moe.grouped_gemm_reference(a, w1, p, activation="silu_and_mul")
    assert rel_err(outs[0][0], ref_mid) < TOL
    assert rel_err(outs[0][1], moe.grouped_gemm_reference(ref_mid, w2, p, gather=False)) < TOL


def test_concurrent_classes_cuda_graph_replay() -> None:
    """Captured on skewed routing (the split of the SMs computed on the GPU from the plan), then
    replayed with uniform routing written in place, where the hot class is empty."""
    ids, a, w1, w2, e = _concurrent_layer(4096, "skewed", seed=3)

    def layer() -> torch.Tensor:
        p = moe.route_plan(ids, e)
        x = moe.grouped_gemm(a, w1, p, activation="silu_and_mul")
        return moe.grouped_gemm(x, w2, p, gather=False, programmatic_launch=True)

    layer()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y = layer()
    _replay_with_new_routing(graph, y, ids, a, w1, w2, e, replays=2)


# ---------------------------------------------------------------- one-launch expert MLP (grouped_mlp)


def _mlp_run(ids: torch.Tensor, e: int, h: int, i: int, cfg: moe.GemmConfig, *, dtype=torch.bfloat16,
             seed: int = 0) -> None:  # type: ignore[no-untyped-def]
    """grouped_mlp with the tile ``cfg`` on fresh data, output poisoned: bit-identical to the two
    grouped_gemm launches with the same tiles, and within TOL of the float32 reference."""
    from staticbatch_moe import _gemm_config as cfgmod

    g = torch.Generator(device="cuda").manual_seed(seed + 7)
    p = moe.route_plan(ids, e)
    x = torch.randn(ids.shape[0], h, device="cuda", generator=g).to(dtype)
    w1 = moe.pack_gate_up(_weights(e, 2 * i, h, dtype, seed))
    w2 = _weights(e, h, i, dtype, seed + 1)
    y = torch.full((p.num_rows, h), float("nan"), dtype=dtype, device="cuda")
    moe.grouped_mlp(x, w1, w2, p, out=y, config=cfg)
    mid = moe.grouped_gemm(x, w1, p, activation="silu_and_mul", config=cfg)
    two = moe.grouped_gemm(mid, w2, p, gather=False,
                           config=cfgmod._swap_config(cfg.block_m, cfg.block_n, None, cfg.dtype, False))
    m = int(p.expert_starts[-1])
    assert torch.equal(y[:m], two[:m])
    if m:  # float32 accumulation (the intermediate rounded to the input dtype, as in the kernel)
        ref = moe.grouped_mlp_reference(x, w1, w2, p)
        assert rel_err(y[:m], ref[:m]) < TOL


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("t", [1, 16])
def test_grouped_mlp_model_shapes(model: str, t: int) -> None:
    from staticbatch_moe import _gemm_config as cfgmod

    h, i, e, k = MODELS[model]
    for bn in (64, 128):
        _mlp_run(uniform_ids(t, e, k), e, h, i, cfgmod._swap_config(8, bn, "silu_and_mul", "bf16", True), seed=t)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize(("bm", "bn"), [(8, 64), (16, 128), (32, 128), (48, 64), (64, 128)])
def test_grouped_mlp_edge_counts(dtype: torch.dtype, bm: int, bn: int) -> None:
    """Several m-blocks per expert (one flag each), empty experts, K and N not multiples of the tile."""
    from staticbatch_moe import _gemm_config as cfgmod

    tag = "bf16" if dtype == torch.bfloat16 else "fp16"
    counts = [1, 15, 16, 17, 0, 63, 64, 65, 127, 128, 129]
    _mlp_run(ids_with_counts(counts), len(counts), 2880, 1408, cfgmod._swap_config(bm, bn, "silu_and_mul", tag, True),
             dtype=dtype)
    _mlp_run(ids_with_counts([200]), 1, 200, 72, cfgmod._swap_config(bm, bn, "silu_and_mul", tag, True), dtype=dtype)


def test_grouped_mlp_all_on_one_expert_and_no_tokens() -> None:
    from staticbatch_moe import _gemm_config as cfgmod

    cfg = cfgmod._swap_config(16, 128, "silu_and_mul", "bf16", True)
    _mlp_run(ids_with_counts([0, 0, 300, 0]), 4, 512, 256, cfg)
    _mlp_run(torch.empty(0, 2, dtype=torch.int32, device="cuda"), 8, 512, 256, cfg)
    ids = torch.full((9, 2), -1, dtype=torch.int32, device="cuda")  # every slot on another rank
    _mlp_run(ids, 8, 512, 256, cfg)


def test_grouped_mlp_graph_replay_and_counters_left_zero() -> None:
    from staticbatch_moe import _gemm_config as cfgmod
    from staticbatch_moe import gemm as gm

    e, t, k, h, i = 32, 24, 4, 1024, 512
    cfg = cfgmod._swap_config(8, 128, "silu_and_mul", "bf16", True)
    ids = uniform_ids(t, e, k)
    a = torch.randn(t, h, device="cuda", dtype=torch.bfloat16)
    w1 = moe.pack_gate_up(_weights(e, 2 * i, h, torch.bfloat16, seed=3))
    w2 = _weights(e, h, i, torch.bfloat16, seed=4)

    def layer() -> torch.Tensor:
        return moe.grouped_mlp(a, w1, w2, moe.route_plan(ids, e), config=cfg)

    first = layer()
    again = layer()
    torch.cuda.synchronize()
    assert torch.equal(first, again)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y = layer()
    for seed in range(3):
        ids.copy_(uniform_ids(t, e, k, generator=torch.Generator(device="cuda").manual_seed(seed)))
        a.normal_()
        y.fill_(float("nan"))
        graph.replay()
        graph.replay()
        torch.cuda.synchronize()
        p = moe.route_plan(ids, e)
        assert rel_err(y, moe.grouped_mlp_reference(a, w1, w2, p)) < TOL
    for (use, _, _), buf in gm._stream_counters.items():
        if use == "mlp":
            assert int(buf.abs().sum()) == 0


# ---------------------------------------------------------------------------------------------
# Tiled weights (pack_weight): 1-D bulk copies of pre-swizzled 64 x 64 blocks
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cfg", tiled_configs(), ids=lambda c: c.kernel_name)
def test_tiled_weights_match_reference_and_plain_weights_bitwise(cfg) -> None:  # type: ignore[no-untyped-def]
    """The same tiles with the weight tiled compute every element as with the weight as given:
    N = 320 (a last 64-row block half past N) and 2880, K = 200 (a last k-block part zero) and
    2880, edge counts, one row, one expert, odd totals, skew."""
    silu = cfg.activation is not None
    act = "silu_and_mul" if silu else None
    for k, n in ((200, 320), (2880, 320), (200, 2880)):
        for case, counts in CLUSTER_COUNTS.items():
            ids = ids_with_counts(counts, seed=3)
            e = len(counts)
            p = moe.route_plan(ids, e)
            g = torch.Generator(device="cuda").manual_seed(k + n)
            a = torch.randn(ids.shape[0] if cfg.gather else p.num_rows, k, device="cuda", generator=g).to(torch.bfloat16)
            w = _weights(e, n, k, torch.bfloat16, seed=k)
            plain = moe.pack_gate_up(w) if silu else w
            tiled = moe.pack_gate_up(w, tiled=True) if silu else moe.pack_weight(w)
            outs = []
            for wt in (plain, tiled):
                out = torch.full((p.num_rows, n // 2 if silu else n), float("nan"), dtype=torch.bfloat16, device="cuda")
                moe.grouped_gemm(a, wt, p, gather=cfg.gather, activation=act, out=out, config=cfg)
                outs.append(out)
            m = int(p.expert_starts[-1])
            ref = moe.grouped_gemm_reference(a, plain, p, gather=cfg.gather, activation=act)
            assert not torch.isnan(outs[1][:m]).any(), (case, k, n)
            assert rel_err(outs[1][:m], ref[:m]) < TOL, (case, k, n)
            assert torch.equal(outs[0], outs[1]), (case, k, n)


@pytest.mark.parametrize(("model", "t"), [(m, t) for t in (1, 16, 1024) for m in MODELS]
                         + [("Qwen3-30B-A3B", 4096), ("Qwen3-235B-A22B", 4096), ("GPT-OSS-120B", 4096)])
def test_tiled_weights_heuristic_layer_bitwise(model: str, t: int) -> None:
    """Both GEMMs of a layer with the heuristic's tiles (two launches, the second programmatic),
    tiled weights against weights as given, and the float32 reference; also under a CUDA graph.
    At T = 4096 the two layouts get different tiles (USE_TILED_TALL: 128-row clusters for tiled
    weights where plain ones get 64-row ping-pong tiles) and must still agree bit for bit."""
    h, i, e, k = MODELS[model]
    ids = uniform_ids(t, e, k)
    p = moe.route_plan(ids, e)
    g = torch.Generator(device="cuda").manual_seed(t)
    x = torch.randn(t, h, device="cuda", generator=g).to(torch.bfloat16)
    w1, w2 = _weights(e, 2 * i, h, torch.bfloat16, 1), _weights(e, h, i, torch.bfloat16, 2)
    plain = (moe.pack_gate_up(w1), w2)
    tiled = (moe.pack_gate_up(w1, tiled=True), moe.pack_weight(w2))
    ys = []
    for a1, a2 in (plain, tiled):
        y = torch.full((p.num_rows, h), float("nan"), dtype=torch.bfloat16, device="cuda")
        moe.grouped_mlp(x, a1, a2, p, out=y)
        ys.append(y)
    assert torch.equal(ys[0], ys[1])
    if t <= 16:
        ref = moe.grouped_mlp_reference(x, *plain, p)
        assert rel_err(ys[1], ref) < TOL
    graph = torch.cuda.CUDAGraph()
    y = torch.full_like(ys[1], float("nan"))
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s), torch.cuda.graph(graph, stream=s):
        moe.grouped_mlp(x, *tiled, p, out=y)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(y, ys[1])
