"""Routing plans (CPU tier; the GPU tier compares the device result with these)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import staticbatch as sb
import staticbatch_moe as moe


def _brute(ids: torch.Tensor, e: int) -> tuple[list[int], list[int], list[list[int]]]:
    t, k = ids.shape
    pairs = [(int(ids[i, j]), i, j) for i in range(t) for j in range(k) if 0 <= int(ids[i, j]) < e]
    pairs.sort(key=lambda p: p[0])  # stable: token, slot order kept within an expert
    counts = [sum(1 for p in pairs if p[0] == x) for x in range(e)]
    gather = [i for _, i, _ in pairs]
    rows = [[-1] * k for _ in range(t)]
    for r, (_, i, j) in enumerate(pairs):
        rows[i][j] = r
    return counts, gather, rows


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 40).flatmap(
        lambda e: st.tuples(
            st.just(e),
            st.integers(0, 30).flatmap(
                lambda t: st.integers(1, 4).flatmap(
                    lambda k: st.lists(st.lists(st.integers(-1, e - 1), min_size=k, max_size=k), min_size=t, max_size=t).map(
                        lambda rows: torch.tensor(rows, dtype=torch.int64).reshape(t, k)
                    )
                )
            ),
        )
    )
)
def test_route_plan_matches_brute_force(case: tuple[int, torch.Tensor]) -> None:
    e, ids = case
    p = moe.route_plan(ids, e)
    counts, gather, rows = _brute(ids, e)
    m = len(gather)
    assert p.expert_counts.tolist() == counts
    assert p.expert_starts.tolist() == [0, *torch.tensor(counts, dtype=torch.int64).cumsum(0).tolist()]
    assert p.gather_idx[:m].tolist() == gather
    assert p.slot_to_row.tolist() == rows
    # The task list is the experts, heaviest first, ties by expert id.
    order = sorted(range(e), key=lambda x: (-counts[x], x))
    assert p.task_expert.tolist() == order
    assert p.task_rows.tolist() == [counts[x] for x in order]
    assert p.task_starts[:e].tolist() == [p.expert_starts[x].item() for x in order]
    assert p.num_rows == ids.numel()


def test_tile_offsets_follow_the_task_order() -> None:
    ids = torch.tensor([[0], [2], [2], [2], [1]] * 40, dtype=torch.int32)  # counts 40, 40, 120
    p = moe.route_plan(ids, 4)
    assert p.task_rows.tolist() == [120, 40, 40, 0]
    # tile_offsets needs the device plan (a GPU); its host twin:
    host = sb.plan(torch.stack([p.task_rows, torch.full_like(p.task_rows, 300)], 1), (64, 128))
    assert host.tile_offsets.tolist() == [0, 6, 9, 12, 12]


@pytest.mark.parametrize(
    ("ids", "e", "match"),
    [
        (torch.tensor([[0, 5]]), 4, r"in \[0, 4\) or -1 \(got 5 at token 0, slot 1\)"),
        (torch.tensor([[0, -2]]), 4, r"got -2"),
        (torch.tensor([[0.0]]), 4, "int32 or torch.int64"),
        (torch.tensor([0, 1]), 4, r"\[num_tokens, top_k\]"),
        (torch.zeros(3, 0, dtype=torch.int64), 4, "top_k >= 1"),
        ([[0]], 4, "torch.Tensor"),
        (torch.tensor([[0]]), 0, "`num_experts`"),
    ],
)
def test_route_plan_errors(ids: object, e: int, match: str) -> None:
    with pytest.raises(sb.InvalidArgumentError, match=match):
        moe.route_plan(ids, e)  # type: ignore[arg-type]


def test_empty_batch() -> None:
    p = moe.route_plan(torch.zeros(0, 8, dtype=torch.int32), 16)
    assert p.num_rows == 0 and p.expert_counts.sum().item() == 0
    assert p.expert_starts.tolist() == [0] * 17
