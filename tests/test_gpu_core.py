"""The core on a GPU: device mappers bitwise against their twins, device plans against host
plans, a custom kind's numerics, CUDA-graph replay with new sizes, 64-bit offsets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kinds import byte_copy_kind, probe_kind, ragged_scale_kind
from strategies import plans

import staticbatch as sb

pytestmark = pytest.mark.gpu

MAPPERS = ["binary_search", "warp_search", sb.Mapper("warp_scan", 8)]
# A few tile shapes, so that the hypothesis examples reuse compiled kernels.
SHAPES = [(1,), (4,), (64,), (3, 5), (16, 16), (2, 3, 4)]


def _run_probe(p: sb.TilePlan | sb.DevicePlan, mapper: sb.Mapper | str, total: int, grid: int | None = None) -> np.ndarray:
    kernel = sb.compile_kernel(probe_kind(p.tiling.tile_shape), mapper)
    width = 2 + p.tiling.ndim
    out = torch.full((max(total, 1), width), -7, dtype=torch.int32, device="cuda")
    kernel(p, out, grid=grid)
    torch.cuda.synchronize()
    return out[:total].cpu().numpy()


def _expected(p: sb.TilePlan) -> np.ndarray:
    """(task, index, coord...) per tile id from the twin, coordinates unravelled row-major."""
    table = sb.map_tiles(p.tile_offsets)
    shape = np.asarray(p.tiling.tile_shape, dtype=np.int64)
    per_dim = (p.sizes[table[:, 0]] + shape - 1) // shape
    coords = np.zeros_like(per_dim)
    rest = table[:, 1].astype(np.int64)
    for d in range(p.tiling.ndim - 1, 0, -1):
        coords[:, d] = rest % per_dim[:, d]
        rest //= per_dim[:, d]
    coords[:, 0] = rest
    return np.concatenate([table, coords.astype(np.int32)], axis=1)


@pytest.mark.parametrize("mapper", MAPPERS, ids=str)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
@given(case=plans(max_tasks=256, max_size=3000, shapes=SHAPES), grid=st.sampled_from([None, 1, 7]))
def test_device_mapper_matches_twin_bitwise(case, grid, mapper) -> None:  # type: ignore[no-untyped-def]
    shape, sizes = case
    p = sb.plan(sizes, shape)
    got = _run_probe(p, mapper, p.total_tiles, grid)
    twin = sb.map_tiles(p.tile_offsets, mapper)
    assert np.array_equal(got[:, :2], twin)
    assert np.array_equal(got, _expected(p))


@pytest.mark.parametrize("mapper", MAPPERS, ids=str)
def test_device_mapper_large_plan(mapper) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(7)
    sizes = rng.integers(0, 8000, size=256)
    sizes[rng.random(256) < 0.25] = 0
    sizes[3] = 1_000_000
    p = sb.plan(sizes, 4)
    got = _run_probe(p, mapper, p.total_tiles)
    assert p.total_tiles > 250_000
    assert np.array_equal(got[:, :2], sb.map_tiles(p.tile_offsets, mapper))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(case=plans(max_tasks=3000, max_size=5000, shapes=SHAPES), dtype=st.sampled_from([torch.int32, torch.int64]))
def test_device_plan_equals_host_plan(case, dtype) -> None:  # type: ignore[no-untyped-def]
    shape, sizes = case
    host = sb.plan(sizes, shape)
    t = torch.tensor(sizes, dtype=dtype, device="cuda").reshape(-1, len(shape))
    dev = sb.device_plan(t, shape)
    assert dev.to_host() == host


def test_device_plan_strided_and_many_tasks() -> None:
    sizes = torch.randint(0, 1000, (100_000, 3), dtype=torch.int64, device="cuda")
    view = sizes[:, ::2]  # non-contiguous [n, 2]
    dev = sb.device_plan(view, (64, 32))
    assert dev.to_host() == sb.plan(view.cpu().numpy(), (64, 32))


def test_device_plan_records_negative_and_overflow() -> None:
    dev = sb.device_plan(torch.tensor([5, -3, 2], dtype=torch.int32, device="cuda"), 4)
    with pytest.raises(sb.InvalidArgumentError, match=">= 0"):
        dev.check()
    assert dev.tile_offsets.tolist() == [0, 2, 2, 3]
    big = sb.device_plan(torch.tensor([2**30, 2**30, 5], dtype=torch.int64, device="cuda"), 1)
    with pytest.raises(sb.PlanOverflowError):
        big.check()
    assert big.tile_offsets[-1].item() == 2**31 - 1
    ok = sb.device_plan(torch.tensor([2**31 - 1], dtype=torch.int64, device="cuda"), 1)
    assert ok.check().tile_offsets.tolist() == [0, 2**31 - 1]


def test_device_plan_empty() -> None:
    dev = sb.device_plan(torch.zeros(0, dtype=torch.int32, device="cuda"), 2048)
    assert dev.to_host().total_tiles == 0
    kernel = sb.compile_kernel(ragged_scale_kind())
    kernel(dev, torch.zeros(1, device="cuda"), torch.zeros(1, device="cuda"), torch.zeros(1, device="cuda"))
    torch.cuda.synchronize()


@pytest.mark.parametrize("mapper", MAPPERS, ids=str)
@pytest.mark.parametrize("on_device", [False, True])
def test_ragged_scale_numerics(mapper, on_device: bool) -> None:  # type: ignore[no-untyped-def]
    lengths = torch.tensor([0, 1, 2047, 2048, 2049, 100_000, 0, 5, 3_000_000], dtype=torch.int64)
    x = torch.randn(int(lengths.sum()), device="cuda")
    scale = torch.randn(len(lengths), device="cuda")
    y = torch.full_like(x, float("nan"))
    kernel = sb.compile_kernel(ragged_scale_kind(), mapper)
    p = sb.device_plan(lengths.cuda(), 2048) if on_device else sb.plan(lengths, 2048)
    kernel(p, x, y, scale)
    ref = x.double() * torch.repeat_interleave(scale.double(), lengths.cuda())
    assert torch.isfinite(y).all()
    assert ((y.double() - ref).norm() / ref.norm()).item() < 1e-6


def test_custom_example_segment_sum() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    import custom_task

    custom_task.check()


def test_cuda_graph_replay_with_new_sizes() -> None:
    kernel = sb.compile_kernel(ragged_scale_kind(), "binary_search")
    capacity = 400_000
    lengths = torch.tensor([10, 0, 5000, 7], dtype=torch.int32, device="cuda")
    x = torch.randn(capacity, device="cuda")
    y = torch.empty(capacity, device="cuda")
    scale = torch.randn(4, device="cuda")
    # Warm up (compile, load, set attributes) outside the capture.
    kernel(sb.device_plan(lengths, 2048), x, y, scale)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        p = sb.device_plan(lengths, 2048)
        kernel(p, x, y, scale, grid=132)
    for new in ([10, 0, 5000, 7], [0, 0, 0, 0], [300_000, 1, 0, 99_999], [2048, 2048, 1, 0]):
        lengths.copy_(torch.tensor(new, dtype=torch.int32))
        x.normal_()
        scale.normal_()
        y.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        n = sum(new)
        ref = x[:n].double() * torch.repeat_interleave(scale.double(), lengths.long())
        got = y[:n].double()
        assert torch.isfinite(got).all()
        if n:
            assert ((got - ref).norm() / ref.norm()).item() < 1e-6
        assert p.to_host() == sb.plan(new, 2048)
        assert torch.isnan(y[n:]).all()  # nothing written past the work


@pytest.mark.slow
def test_offsets_past_int32() -> None:
    lengths = torch.tensor([2**31 - 5, 3, 70_000, 0, 11], dtype=torch.int64)
    n = int(lengths.sum())
    assert n > 2**31
    x = torch.randint(0, 200, (n,), dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    kernel = sb.compile_kernel(byte_copy_kind())
    kernel(sb.plan(lengths, 1 << 16), x, y)
    starts = [0, *np.cumsum(lengths.numpy()).tolist()]
    for task in range(5):
        a, b = starts[task], starts[task + 1]
        for lo, hi in ((a, min(a + 1000, b)), (max(a, b - 1000), b)):
            assert torch.equal(y[lo:hi], (x[lo:hi] + task).to(torch.uint8)), (task, lo, hi)
    del x, y
    torch.cuda.empty_cache()


def test_launch_errors_on_gpu() -> None:
    kernel = sb.compile_kernel(ragged_scale_kind())
    p = sb.plan([4], 2048)
    x = torch.randn(4, device="cuda")
    with pytest.raises(sb.InvalidArgumentError, match="dtype torch.float32"):
        kernel(p, x.half(), x, x)
    with pytest.raises(sb.InvalidArgumentError, match="must be on"):
        kernel(p, x, x.cpu(), x)
    with pytest.raises(sb.InvalidArgumentError, match="`grid`"):
        kernel(p, x, x, x, grid=0)
    with pytest.raises(sb.InvalidArgumentError, match="int32 or torch.int64"):
        sb.device_plan(torch.ones(3, device="cuda"), 4)
    dev = sb.device_plan(torch.ones(3, dtype=torch.int32, device="cuda"), 4)
    with pytest.raises(sb.InvalidArgumentError, match="`out`"):
        sb.device_plan(torch.ones(4, dtype=torch.int32, device="cuda"), 4, out=dev)


def test_two_entry_points_of_one_source_load_apart() -> None:
    src = """
    #include <staticbatch/common.cuh>
    extern "C" __global__ void sb_twin_a(int* x) { x[0] = 1; }
    extern "C" __global__ void sb_twin_b(int* x, int v) { x[1] = v; }
    """
    a = sb.load(sb.compile_source(src, "sb_twin_a"), 0)
    b = sb.load(sb.compile_source(src, "sb_twin_b"), 0)
    assert a is not b
    x = torch.zeros(2, dtype=torch.int32, device="cuda")
    a.launch(1, 32, 0, [x])
    b.launch(1, 32, 0, [x, np.int32(9)])
    assert x.tolist() == [1, 9]


def test_dynamic_shared_memory_beside_static_up_to_48_kb_and_past_it() -> None:
    """A kernel with static shared memory launches with dynamic shared memory that takes the
    total past 48 KB (the attribute raised for what the static part leaves), and every byte of
    both is usable."""
    src = """
    #include <staticbatch/common.cuh>
    extern "C" __global__ void sb_static_and_dynamic(unsigned int* out, int words) {
      __shared__ unsigned int fixed[256];
      extern __shared__ unsigned int dyn[];
      for (int i = threadIdx.x; i < 256; i += blockDim.x) fixed[i] = i;
      for (int i = threadIdx.x; i < words; i += blockDim.x) dyn[i] = 3u * i;
      __syncthreads();
      if (threadIdx.x == 0) {
        unsigned int s = 0;
        for (int i = 0; i < 256; ++i) s += fixed[i];
        for (int i = 0; i < words; ++i) s += dyn[i];
        out[0] = s;
      }
    }
    """
    kernel = sb.load(sb.compile_source(src, "sb_static_and_dynamic"), 0)
    out = torch.zeros(1, dtype=torch.int32, device="cuda")
    for smem in (48 * 1024 - 1024, 48 * 1024, 64 * 1024):
        words = smem // 4
        out.fill_(-1)
        kernel.launch(1, 128, smem, [out, np.int32(words)])
        torch.cuda.synchronize()
        want = (sum(range(256)) + 3 * words * (words - 1) // 2) % 2**32
        assert out.item() % 2**32 == want, smem


def test_cooperative_launch_runs_and_refuses_a_grid_that_cannot_be_resident() -> None:
    """A cooperative launch of a grid whose blocks all fit runs (also captured in a CUDA graph);
    one with more blocks than can be resident at once is refused with a LaunchError instead of
    waiting forever at a grid barrier."""
    src = """
    #include <staticbatch/common.cuh>
    extern "C" __global__ void sb_coop_count(unsigned int* x) {
      if (threadIdx.x == 0) atomicAdd(x, 1u);
    }
    """
    kernel = sb.load(sb.compile_source(src, "sb_coop_count"), 0)
    sms = sb.device_properties(0).num_sms
    smem = 200 * 1024  # one block per SM
    x = torch.zeros(1, dtype=torch.int32, device="cuda")
    kernel.launch(sms, 128, smem, [x], cooperative=True)
    kernel.launch(sms, 128, smem, [x], cooperative=True, programmatic=True)
    torch.cuda.synchronize()
    assert x.item() == 2 * sms
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    with torch.cuda.stream(s), torch.cuda.graph(g, stream=s):
        kernel.launch(sms, 128, smem, [x], cooperative=True)
    g.replay()
    torch.cuda.synchronize()
    assert x.item() == 3 * sms
    with pytest.raises(sb.LaunchError, match="cooperative"):
        kernel.launch(sms + 1, 128, smem, [x], cooperative=True)
    torch.cuda.synchronize()
    assert x.item() == 3 * sms


@pytest.mark.parametrize("mapper", ["binary_search", "warp_search"])
def test_device_search_mappers_many_tasks(mapper: str) -> None:
    rng = np.random.default_rng(11)
    counts = rng.integers(0, 40, size=70_000)
    counts[rng.random(70_000) < 0.4] = 0
    p = sb.plan(counts, 1)
    got = _run_probe(p, mapper, p.total_tiles)
    assert np.array_equal(got[:, :2], sb.map_tiles(p.tile_offsets, mapper))
