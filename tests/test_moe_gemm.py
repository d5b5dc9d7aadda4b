"""Grouped GEMM: the reference and CPU path (CPU tier), every shipped kernel configuration
compiling (nvrtc tier), and the Hopper kernel against the float32 reference (sm90 tier)."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
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
    """Every configuration the heuristic picks for the benchmark grid, in both dtypes, plus
    the alternatives the sweep may time."""
    found: set[cfgmod.GemmConfig] = set()
    candidates = getattr(cfgmod, "candidate_configs", None)
    for (h, i, e, k), t, dtype in itertools.product(MODELS.values(), TS, ("bf16", "fp16")):
        for n, kk, act, gather in ((2 * i, h, "silu_and_mul", True), (h, i, None, False), (h, i, None, True)):
            cfg = moe.choose_config(t * k, e, n, kk, dtype, act, gather)
            found.add(cfg)
            if gather:  # the cp.async gather stays selectable
                found.add(dataclasses.replace(cfg, gather_mode="cp_async"))
            if candidates is not None and dtype == "bf16":
                found.update(candidates(t * k, e, n, kk, dtype, act, gather))
    return sorted(found, key=lambda c: c.kernel_name)


@pytest.mark.nvrtc
def test_every_shipped_config_compiles() -> None:
    configs = _shipped_configs()
    assert len(configs) >= 10
    for cfg in configs:
        compiled = sb.compile_source(cfgmod.kernel_source(cfg), cfg.kernel_name, arch="sm_90a",
                                     options=("--ptxas-options=-v",))
        assert compiled.cubin[:4] == b"\x7fELF"
        if compiled.log:  # a fresh compile: the resource report must show no spills
            assert " 0 bytes spill stores" in compiled.log, (cfg.kernel_name, compiled.log)


def test_gather_mode() -> None:
    """The TMA gather is the default; both methods get their own kernel name; a mode without gather is an error."""
    tma = cfgmod.GemmConfig(gather=True)
    cpa = cfgmod.GemmConfig(gather=True, gather_mode="cp_async")
    assert tma.gather_mode == "tma" and moe.choose_config(4096, 8, 512, 256, gather=True).gather_mode == "tma"
    assert len({tma.kernel_name, cpa.kernel_name, cfgmod.GemmConfig().kernel_name}) == 3
    squash = lambda c: "".join(cfgmod.kernel_source(c).split())  # noqa: E731
    assert "false,true>(" in squash(tma) and "false,false>(" in squash(cpa)  # ..., kPingpong, kTmaGather
    with pytest.raises(sb.InvalidArgumentError, match="gather_mode"):
        cfgmod.GemmConfig(gather_mode="dma")
    with pytest.raises(sb.InvalidArgumentError, match="only with gather=True"):
        cfgmod.GemmConfig(gather_mode="cp_async")
