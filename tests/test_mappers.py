"""The mappers' Python twins against brute force (pure CPU)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import tile_offsets

import staticbatch as sb
from staticbatch import mappers


@settings(max_examples=300, deadline=None)
@given(tile_offsets())
def test_twins_match_brute_force(offsets: list[int]) -> None:
    expected = mappers.brute_force(offsets)
    assert np.array_equal(mappers.map_tiles(offsets, "binary_search"), expected)
    assert np.array_equal(mappers.map_tiles(offsets, "warp_search"), expected)
    slots = max(1, -(-(len(offsets) - 1) // 32))
    assert np.array_equal(mappers.map_tiles(offsets, sb.Mapper("warp_scan", slots)), expected)


@settings(max_examples=100, deadline=None)
@given(tile_offsets(max_tasks=2000, max_tiles_per_task=3), st.data())
def test_scalar_twins_match_vectorised(offsets: list[int], data: st.DataObject) -> None:
    table = mappers.map_tiles(offsets)
    tile = data.draw(st.integers(0, offsets[-1] - 1))
    assert mappers.binary_search(offsets, tile) == tuple(table[tile])
    if len(offsets) - 1 <= 128:
        assert mappers.warp_scan(offsets, tile, slots=4) == tuple(table[tile])
    assert mappers.warp_search(offsets, tile) == tuple(table[tile])


def test_empty_tasks_at_both_ends_and_between() -> None:
    offsets = [0, 0, 0, 3, 3, 3, 4, 4]
    assert mappers.map_tiles(offsets).tolist() == [[2, 0], [2, 1], [2, 2], [5, 0]]
    assert mappers.map_tiles(offsets, "warp_scan").tolist() == [[2, 0], [2, 1], [2, 2], [5, 0]]
    assert mappers.map_tiles(offsets, "warp_search").tolist() == [[2, 0], [2, 1], [2, 2], [5, 0]]


def test_warp_scan_capacity() -> None:
    offsets = list(range(258))  # 257 tasks of one tile
    with pytest.raises(sb.InvalidArgumentError, match="at most 256 tasks"):
        mappers.map_tiles(offsets, "warp_scan")
    assert mappers.map_tiles(offsets, sb.Mapper("warp_scan", 9))[-1].tolist() == [256, 0]


def test_tile_id_out_of_range() -> None:
    with pytest.raises(sb.InvalidArgumentError, match=r"in \[0, 3\)"):
        mappers.binary_search([0, 3], 3)
    with pytest.raises(sb.InvalidArgumentError, match=r"in \[0, 3\)"):
        mappers.warp_scan([0, 3], -1)
    with pytest.raises(sb.InvalidArgumentError, match=r"in \[0, 3\)"):
        mappers.warp_search([0, 3], 7)


@pytest.mark.parametrize("bad", ["linear", 3, None])
def test_bad_mapper(bad: object) -> None:
    with pytest.raises(sb.InvalidArgumentError, match="mapper"):
        sb.Mapper.of(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("slots", [0, 33, True])
def test_bad_slots(slots: object) -> None:
    with pytest.raises(sb.InvalidArgumentError, match="slots"):
        sb.Mapper("warp_scan", slots)  # type: ignore[arg-type]


def test_large_plan_twins() -> None:
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 300, size=4096)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    table = mappers.map_tiles(offsets)
    assert np.array_equal(mappers.map_tiles(offsets, "warp_search"), table)
    assert np.array_equal(np.repeat(np.arange(4096), counts), table[:, 0])
    starts = np.repeat(offsets[:-1], counts)
    assert np.array_equal(np.arange(offsets[-1]) - starts, table[:, 1])
