"""``fused_moe`` registered as a torch custom op, so that ``torch.compile`` (fullgraph) and CUDA
graphs treat the whole expert computation as one opaque, shape-preserving operation."""

from __future__ import annotations

import torch

from staticbatch_moe.gemm import GateUpWeight
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
) -> torch.Tensor:
    """:func:`staticbatch_moe.fused_moe` as ``torch.ops.staticbatch_moe.fused_moe``.

    ``w1_packed`` says that ``w1`` holds the interleaved rows of a :class:`GateUpWeight`.
    """
    weight = GateUpWeight(w1) if w1_packed else w1
    return fused_moe(hidden_states, weight, w2, topk_weights, topk_ids, activation=activation, w1_bias=w1_bias,
                     w2_bias=w2_bias, swiglu_alpha=swiglu_alpha, swiglu_limit=swiglu_limit)


fused_moe_op = torch.library.custom_op("staticbatch_moe::fused_moe", mutates_args=())(fused_moe_impl)


@fused_moe_op.register_fake
def _(hidden_states, w1, w2, topk_weights, topk_ids, activation, w1_packed, w1_bias, w2_bias, swiglu_alpha,  # type: ignore[no-untyped-def]
      swiglu_limit):
    return hidden_states.new_empty(hidden_states.shape)
