"""Drop-in replacement of Hugging Face transformers' sparse MoE blocks.

``patch(model)`` walks the model and replaces each supported block, in place, by a
:class:`PatchedBlock` holding a :class:`staticbatch_moe.MoE` with the block's weights (copied
once; the gate/up weight packed once, and both tiled for bf16 / fp16 models: see
``MoE(weight_layout=...)``). Supported (transformers >= 5, experts stored as 3-D
tensors): Mixtral, Qwen2-MoE (with its sigmoid-gated shared expert), Qwen3-MoE, OLMoE,
DeepSeek-V3 (sigmoid scores, correction bias, grouped top-k, routed scaling, shared experts)
and GPT-OSS (biases, clamped SwiGLU, softmax over the selected logits). Any other block is
left alone, with a note in the log.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from staticbatch_moe.layer import MoE

__all__ = ["PatchedBlock", "patch", "SUPPORTED"]

logger = logging.getLogger("staticbatch.moe.hf")


class PatchedBlock(nn.Module):
    """A transformers MoE block replaced by :class:`MoE`; same call signature and output."""

    def __init__(self, moe: MoE, *, returns_router_scores: bool = False, original: str = "") -> None:
        super().__init__()
        self.moe = moe
        self.returns_router_scores = returns_router_scores
        self.original = original

    def extra_repr(self) -> str:
        return f"replaces={self.original}"

    def forward(self, hidden_states: torch.Tensor) -> Any:
        out = self.moe(hidden_states)
        if self.returns_router_scores:  # GPT-OSS's MLP returns (hidden, router scores)
            weights, _ = self.moe.route(hidden_states.reshape(-1, self.moe.hidden_size))
            return out, weights.to(hidden_states.dtype)
        return out


def _like(p: torch.Tensor) -> dict:
    return {"dtype": p.dtype, "device": p.device}


def _shared(moe: MoE, mlp: Any) -> None:
    shared: Any = moe.shared  # built with shared_intermediate_size by the caller
    for name in ("gate_proj", "up_proj", "down_proj"):
        shared[name].weight.data.copy_(getattr(mlp, name).weight.data)


def _softmax_block(block: Any, config: Any, *, renormalize: bool, shared: Any = None,
                   shared_gate: Any = None) -> MoE:
    experts, gate = block.experts, block.gate
    e, two_i, h = experts.gate_up_proj.shape
    moe = MoE(h, two_i // 2, e, gate.top_k, scoring="softmax", renormalize=renormalize,
              shared_intermediate_size=shared.gate_proj.out_features if shared is not None else 0,
              shared_gate=shared_gate is not None, **_like(experts.gate_up_proj))
    moe.router.weight.data.copy_(gate.weight.data)
    moe.load_experts(experts.gate_up_proj.data, experts.down_proj.data)
    if shared is not None:
        _shared(moe, shared)
    if shared_gate is not None:
        moe.shared_gate.weight.data.copy_(shared_gate.weight.data)  # type: ignore[union-attr]
    return moe


def _mixtral(block: Any, config: Any) -> PatchedBlock:
    return PatchedBlock(_softmax_block(block, config, renormalize=True), original=type(block).__name__)


def _qwen_like(block: Any, config: Any) -> PatchedBlock:
    moe = _softmax_block(block, config, renormalize=bool(block.gate.norm_topk_prob),
                         shared=getattr(block, "shared_expert", None), shared_gate=getattr(block, "shared_expert_gate", None))
    return PatchedBlock(moe, original=type(block).__name__)


def _deepseek_v3(block: Any, config: Any) -> PatchedBlock:
    experts, gate = block.experts, block.gate
    e, two_i, h = experts.gate_up_proj.shape
    moe = MoE(h, two_i // 2, e, gate.top_k, scoring="sigmoid", renormalize=bool(gate.norm_topk_prob),
              num_expert_group=gate.num_group, topk_group=gate.topk_group,
              routed_scaling_factor=float(gate.routed_scaling_factor), correction_bias=True,
              shared_intermediate_size=block.shared_experts.gate_proj.out_features, router_dtype=torch.float32,
              **_like(experts.gate_up_proj))
    moe.router.weight.data.copy_(gate.weight.data)
    bias: Any = moe.e_score_correction_bias
    bias.copy_(gate.e_score_correction_bias)
    moe.load_experts(experts.gate_up_proj.data, experts.down_proj.data)
    _shared(moe, block.shared_experts)
    return PatchedBlock(moe, original=type(block).__name__)


def _gpt_oss(block: Any, config: Any) -> PatchedBlock:
    experts, router = block.experts, block.router
    e, h, two_i = experts.gate_up_proj.shape  # [E, H, 2I], gate/up interleaved along 2I
    moe = MoE(h, two_i // 2, e, router.top_k, scoring="softmax_selected", activation="swigluoai", expert_bias=True,
              router_bias=True, swiglu_alpha=float(experts.alpha), swiglu_limit=float(experts.limit),
              **_like(experts.gate_up_proj))
    moe.router.weight.data.copy_(router.weight.data)
    moe.router.bias.data.copy_(router.bias.data)
    moe.load_experts(experts.gate_up_proj.data.transpose(1, 2), experts.down_proj.data.transpose(1, 2),
                     experts.gate_up_proj_bias.data, experts.down_proj_bias.data)
    return PatchedBlock(moe, returns_router_scores=True, original=type(block).__name__)


SUPPORTED = {
    "MixtralSparseMoeBlock": _mixtral,
    "Qwen2MoeSparseMoeBlock": _qwen_like,
    "Qwen3MoeSparseMoeBlock": _qwen_like,
    "OlmoeSparseMoeBlock": _qwen_like,
    "DeepseekV3MoE": _deepseek_v3,
    "GptOssMLP": _gpt_oss,
}


def _act_ok(block: Any) -> bool:
    act = getattr(getattr(block, "experts", None), "act_fn", None)
    return act is None or isinstance(act, nn.SiLU) or type(act).__name__ in ("SiLU", "SiLUActivation")


def patch(model: nn.Module) -> list[str]:
    """Replace the supported sparse MoE blocks of ``model`` in place.

    Returns
    -------
    list of str
        The names of the modules replaced. Other blocks that look like MoE blocks are left
        alone and named in the log.
    """
    config = getattr(model, "config", None)
    replaced: list[str] = []
    for name, module in list(model.named_modules()):
        kind = type(module).__name__
        if not name or isinstance(module, PatchedBlock):
            continue
        builder = SUPPORTED.get(kind)
        if builder is None:
            if ("Moe" in kind or "MoE" in kind) and ("Block" in kind or kind.endswith("MoE")):
                logger.info("staticbatch_moe.hf.patch: left %s (%s) alone: not a supported block", name, kind)
            continue
        if not _act_ok(module):
            logger.info("staticbatch_moe.hf.patch: left %s (%s) alone: its activation is not SiLU", name, kind)
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        with torch.no_grad():
            new = builder(module, config)
        new.train(module.training)
        setattr(parent, child, new)
        replaced.append(name)
    logger.info("staticbatch_moe.hf.patch: replaced %d blocks", len(replaced))
    return replaced
