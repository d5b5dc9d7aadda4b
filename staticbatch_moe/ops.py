"""``fused_moe`` registered as a torch custom op, so that ``torch.compile`` (fullgraph) and CUDA
graphs treat the whole expert computation as one opaque, shape-preserving operation."""

from __future__ import annotations

from typing import Any

import torch

from staticbatch_moe.gemm import GateUpWeight, TiledWeight
from staticbatch_moe.layer import fused_moe

__all__ = ["fused_moe_impl", "fused_moe_op"]


def fused_moe_impl(
    hidden_states: torch.Tensor,
    w1: torch.Tensor,
    w2: torch.Tensor,
    topk_weights: torch.Tensor,
    topk_ids: torch.Tensor,
    activation: str,
    w1_packed: bool,
    w1_bias: torch.Tensor | None,
    w2_bias: torch.Tensor | None,
    swiglu_alpha: float,
    swiglu_limit: float,
    tiled_intermediate: int = 0,
) -> torch.Tensor:
    """:func:`staticbatch_moe.fused_moe` as ``torch.ops.staticbatch_moe.fused_moe``.

    ``w1_packed`` says that ``w1`` holds the interleaved rows of a :class:`GateUpWeight`;
    ``tiled_intermediate`` > 0 that ``w1`` and ``w2`` are the ``tiles`` of :class:`TiledWeight`
    of intermediate size I (``[E, 2I, H]`` and ``[E, H, I]``).
    """
    weight: Any = w1
    weight2: Any = w2
    if tiled_intermediate > 0:
        h = hidden_states.shape[-1]
        weight = TiledWeight(w1, 2 * tiled_intermediate, h)
        weight2 = TiledWeight(w2, h, tiled_intermediate)
    weight = GateUpWeight(weight) if w1_packed else weight
    return fused_moe(hidden_states, weight, weight2, topk_weights, topk_ids, activation=activation, w1_bias=w1_bias,
                     w2_bias=w2_bias, swiglu_alpha=swiglu_alpha, swiglu_limit=swiglu_limit)


fused_moe_op = torch.library.custom_op("staticbatch_moe::fused_moe", mutates_args=())(fused_moe_impl)


@fused_moe_op.register_fake
def _(hidden_states, w1, w2, topk_weights, topk_ids, activation, w1_packed, w1_bias, w2_bias, swiglu_alpha,  # type: ignore[no-untyped-def]
      swiglu_limit, tiled_intermediate=0):
    return hidden_states.new_empty(hidden_states.shape)
