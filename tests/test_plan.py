"""Host plans: tile counts, prefix sums and errors (pure CPU)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from strategies import plans

import staticbatch as sb


def _expected_counts(shape: tuple[int, ...], sizes: list[list[int]]) -> list[int]:
    return [math.prod(-(-s // t) for s, t in zip(row, shape)) for row in sizes]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(plans())
def test_prefix_sums_match_per_task_counts(case: tuple[tuple[int, ...], list[list[int]]]) -> None:
    shape, sizes = case
    p = sb.plan(sizes, shape)
    counts = _expected_counts(shape, sizes)
    assert p.tile_offsets.dtype == np.int32
    assert p.tile_offsets.tolist() == [0, *np.cumsum(counts, dtype=np.int64).tolist()]
    assert p.total_tiles == sum(counts)
    assert p.num_tasks == len(sizes)
    rows = [r[0] for r in sizes]
    assert p.task_starts.tolist() == [0, *np.cumsum(rows, dtype=np.int64).tolist()]
    # Empty tasks get nothing; metadata stays O(#tasks).
    for i, row in enumerate(sizes):
        if 0 in row:
            assert p.tile_offsets[i] == p.tile_offsets[i + 1]
    assert p.tile_offsets.shape == (len(sizes) + 1,)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(plans())
def test_every_tile_once_in_order_and_within_its_task(case: tuple[tuple[int, ...], list[list[int]]]) -> None:
    shape, sizes = case
    p = sb.plan(sizes, shape)
    table = sb.map_tiles(p.tile_offsets)
    counts = _expected_counts(shape, sizes)
    assert np.array_equal(table[:, 0], np.repeat(np.arange(len(sizes)), counts))
    starts = np.repeat(np.cumsum([0, *counts])[:-1], counts)
    assert np.array_equal(table[:, 1], np.arange(sum(counts)) - starts)
    # No tile crosses a task: each tile's first element lies inside its task's extent.
    if table.size:
        shape_arr = np.asarray(shape, dtype=np.int64)
        sizes_arr = np.asarray(sizes, dtype=np.int64)[table[:, 0]]
        per_dim = (sizes_arr + shape_arr - 1) // shape_arr
        rest = table[:, 1].astype(np.int64)
        for d in range(len(shape) - 1, -1, -1):
            coord = rest % per_dim[:, d] if d else rest
            rest = rest // per_dim[:, d] if d else rest
            assert (coord * shape_arr[d] < sizes_arr[:, d]).all() and (coord >= 0).all()


def test_docstring_example_and_inputs() -> None:
    p = sb.plan([[300, 512], [0, 512], [64, 100]], (128, 256))
    assert p.tile_offsets.tolist() == [0, 6, 6, 7]
    same = sb.plan(np.array([[300, 512], [0, 512], [64, 100]], dtype=np.int32), sb.Tiling((128, 256)))
    assert p == same
    from_tensor = sb.plan(torch.tensor([[300, 512], [0, 512], [64, 100]]), [128, 256])
    assert p == from_tensor
    assert sb.plan([], 64).total_tiles == 0
    assert sb.plan([], 64).num_tasks == 0
    assert sb.plan([7], 1).tile_offsets.tolist() == [0, 7]


def test_plan_is_frozen() -> None:
    p = sb.plan([3, 4], 2)
    with pytest.raises(AttributeError):
        p.tiling = sb.Tiling((4,))  # type: ignore[misc]
    with pytest.raises(ValueError):
        p.tile_offsets[0] = 5


def test_thousands_of_tasks() -> None:
    rng = np.random.default_rng(0)
    sizes = rng.integers(0, 1000, size=(5000, 2))
    sizes[rng.random(5000) < 0.3, 0] = 0
    p = sb.plan(sizes, (64, 128))
    counts = ((sizes[:, 0] + 63) // 64) * ((sizes[:, 1] + 127) // 128)
    assert p.total_tiles == counts.sum()
    assert np.array_equal(sb.map_tiles(p.tile_offsets), sb.mappers.brute_force(p.tile_offsets))


def test_overflow_is_refused() -> None:
    with pytest.raises(sb.PlanOverflowError, match="int32"):
        sb.plan([2**31], 1)
    with pytest.raises(sb.PlanOverflowError):
        sb.plan([2**30, 2**30], 1)
    with pytest.raises(sb.PlanOverflowError):
        sb.plan([[2**40, 2**40, 2**40]], (1, 1, 1))
    # Just fits.
    assert sb.plan([2**31 - 1], 1).total_tiles == 2**31 - 1
    # Huge sizes are fine when the tile count is small: task_starts are 64-bit.
    p = sb.plan([[2**40, 1], [5, 1]], (2**30, 1))
    assert p.task_starts.tolist() == [0, 2**40, 2**40 + 5]


@pytest.mark.parametrize(
    ("sizes", "tiling", "match"),
    [
        ([1.5, 2.0], 4, "integers"),
        ([[1, 2]], 4, r"shape \[num_tasks, 1\]"),
        ([1, 2], (4, 4), r"shape \[num_tasks, 2\]"),
        ([3, -1], 4, r">= 0 \(got -1 for task 1"),
        (torch.tensor([1.0]), 4, "integers"),
        ("abc", 4, "integers"),
    ],
)
def test_bad_sizes(sizes: object, tiling: object, match: str) -> None:
    with pytest.raises(sb.InvalidArgumentError, match=match):
        sb.plan(sizes, tiling)  # type: ignore[arg-type]


@pytest.mark.parametrize("tiling", [0, -3, (4, 0), (), (1, 2, 3, 4), 2.5, "x", (True,)])
def test_bad_tiling(tiling: object) -> None:
    with pytest.raises(sb.InvalidArgumentError, match="til"):
        sb.plan([1], tiling)  # type: ignore[arg-type]


def test_bad_input_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        sb.plan([-1], 4)


def test_device_sizes_are_refused_by_host_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    meta = torch.empty(3, dtype=torch.int64, device="meta")
    with pytest.raises(sb.InvalidArgumentError, match="device_plan"):
        sb.plan(meta, 4)


def test_device_plan_input_checks_on_cpu() -> None:
    with pytest.raises(sb.InvalidArgumentError, match="torch.Tensor"):
        sb.device_plan([1, 2], 4)
    with pytest.raises(sb.InvalidArgumentError, match="int32 or torch.int64"):
        sb.device_plan(torch.ones(3), 4)
    with pytest.raises(sb.InvalidArgumentError, match=r"shape \[num_tasks, 2\]"):
        sb.device_plan(torch.ones(3, dtype=torch.int32), (4, 4))
    with pytest.raises(sb.InvalidArgumentError, match="CUDA device"):
        sb.device_plan(torch.ones(3, dtype=torch.int32), 4)
