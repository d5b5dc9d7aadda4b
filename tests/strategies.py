"""Hypothesis strategies for plans: empty tasks, one task, all work in one task, thousands of
tasks, sizes at tile edges, huge counts."""

from __future__ import annotations

import math

from hypothesis import assume
from hypothesis import strategies as st


def tile_shapes(max_ndim: int = 3) -> st.SearchStrategy[tuple[int, ...]]:
    extent = st.one_of(st.sampled_from([1, 2, 16, 64, 128, 256]), st.integers(1, 300))
    return st.integers(1, max_ndim).flatmap(lambda n: st.tuples(*[extent] * n))


def _size_near_edges(tile: int, max_size: int) -> st.SearchStrategy[int]:
    """0, multiples of the tile and one either side, or anything."""
    edge = st.integers(0, max(1, max_size // max(tile, 1))).flatmap(
        lambda k: st.sampled_from([k * tile - 1, k * tile, k * tile + 1])
    )
    return st.one_of(st.just(0), edge.filter(lambda s: 0 <= s <= max_size), st.integers(0, max_size))


def sizes_for(tile_shape: tuple[int, ...], max_tasks: int = 64, max_size: int = 2000) -> st.SearchStrategy[list[list[int]]]:
    row = st.tuples(*[_size_near_edges(t, max_size) for t in tile_shape]).map(list)
    many = st.lists(row, min_size=0, max_size=max_tasks)
    one_hot = st.tuples(st.integers(1, max_tasks), row).flatmap(
        lambda nr: st.integers(0, nr[0] - 1).map(
            lambda i: [nr[1] if j == i else [0] * len(tile_shape) for j in range(nr[0])]
        )
    )
    return st.one_of(many, one_hot, row.map(lambda r: [r]))


@st.composite
def plans(draw: st.DrawFn, max_ndim: int = 3, max_tasks: int = 64, max_size: int = 2000,
          shapes: list[tuple[int, ...]] | None = None, max_tiles: int = 300_000) -> tuple[tuple[int, ...], list[list[int]]]:
    """(tile_shape, sizes) pairs with at most ``max_tiles`` tiles in all (three dimensions of
    2000 with unit tiles would be 8e9); ``shapes`` restricts the tile shapes to a fixed list."""
    shape = draw(st.sampled_from(shapes)) if shapes else draw(tile_shapes(max_ndim))
    sizes = draw(sizes_for(shape, max_tasks, max_size))
    assume(sum(math.prod(-(-s // t) for s, t in zip(row, shape)) for row in sizes) <= max_tiles)
    return shape, sizes


@st.composite
def tile_offsets(draw: st.DrawFn, max_tasks: int = 300, max_tiles_per_task: int = 40) -> list[int]:
    """Exclusive prefix sums with empty tasks mixed in; at least one tile in total."""
    counts = draw(
        st.lists(
            st.one_of(st.just(0), st.integers(1, max_tiles_per_task)), min_size=1, max_size=max_tasks
        ).filter(lambda c: sum(c) > 0)
    )
    out = [0]
    for c in counts:
        out.append(out[-1] + c)
    return out
