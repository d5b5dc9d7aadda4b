"""The MoE layer: routing -> plan -> expert GEMMs -> weighted combine.

``select_experts`` turns router logits into (weights, expert ids); ``fused_moe`` runs the
experts of every token and combines their outputs; :class:`MoE` holds the router, the expert
weights and optional shared experts. All of it is torch operations plus the grouped GEMM
kernel, with no host synchronisation for a fixed number of tokens. Tensors on the CPU, or on a
GPU that is not Hopper, take the torch reference path of the GEMMs.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
from torch import nn

import staticbatch as sb
from staticbatch_moe import _route_kernels as rk
from staticbatch_moe._gemm_config import choose_mlp_config, choose_tile_classes
from staticbatch_moe.gemm import GateUpWeight, TiledWeight, grouped_gemm, grouped_mlp, pack_gate_up, pack_weight
from staticbatch_moe.routing import route_plan

__all__ = ["MoE", "combine", "fused_moe", "select_experts"]

_SCORINGS = ("softmax", "sigmoid", "softmax_selected")
_ACTIVATIONS = ("silu", "swigluoai")
_WEIGHT_LAYOUTS = ("auto", "tiled", "plain")
SWIGLUOAI_ALPHA = 1.702
SWIGLUOAI_LIMIT = 7.0


def select_experts(
    router_logits: torch.Tensor,
    top_k: int,
    *,
    scoring: str = "softmax",
    renormalize: bool = True,
    num_expert_group: int | None = None,
    topk_group: int | None = None,
    e_score_correction_bias: torch.Tensor | None = None,
    routed_scaling_factor: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose top-k experts per token and their weights.

    Parameters
    ----------
    router_logits : torch.Tensor
        ``[T, E]``, any float dtype, any device (computed in float32).
    top_k : int
        Experts per token, 1 <= top_k <= E.
    scoring : {"softmax", "sigmoid", "softmax_selected"}
        ``softmax``: softmax over all experts, then top-k (Mixtral, Qwen, OLMoE).
        ``sigmoid``: sigmoid scores; the choice uses ``scores + e_score_correction_bias``, the
        weights the scores themselves (DeepSeek-V3). ``softmax_selected``: top-k of the logits,
        then softmax over the k selected (GPT-OSS).
    renormalize : bool
        Divide the k weights by their sum (not applied to ``softmax_selected``, already normalised).
    num_expert_group, topk_group : int, optional
        Grouped top-k: experts form ``num_expert_group`` groups; only the ``topk_group`` best
        groups are eligible. A group's score is the sum of its two best scores when a correction
        bias is given (DeepSeek-V3), else its best score.
    e_score_correction_bias : torch.Tensor, optional
        ``[E]`` float, added to the scores for the choice only.
    routed_scaling_factor : float
        Multiplies the final weights (2.5 for DeepSeek-V3).

    Returns
    -------
    (topk_weights, topk_ids)
        float32 ``[T, k]`` and int32 ``[T, k]``, on the logits' device. Ties go to the lower
        expert id.

    Notes
    -----
    On a Hopper GPU (E <= 1024, at most 32 groups) this is one kernel, a warp per token
    (``cuda_src/staticbatch/moe/routing.cuh``); elsewhere the same computation in torch
    operations. Neither syncs with the host.
    """
    if not isinstance(router_logits, torch.Tensor) or router_logits.dim() != 2:
        raise sb.InvalidArgumentError(
            f"`router_logits` must be a [num_tokens, num_experts] tensor (got {getattr(router_logits, 'shape', type(router_logits).__name__)})"
        )
    if not router_logits.dtype.is_floating_point:
        raise sb.InvalidArgumentError(f"`router_logits` must be floating point (got {router_logits.dtype})")
    e = router_logits.shape[1]
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= e:
        raise sb.InvalidArgumentError(f"`top_k` must be between 1 and num_experts={e} (got {top_k!r})")
    if scoring not in _SCORINGS:
        raise sb.InvalidArgumentError(f"`scoring` must be one of {_SCORINGS} (got {scoring!r})")
    if (num_expert_group is None) != (topk_group is None):
        raise sb.InvalidArgumentError("`num_expert_group` and `topk_group` must be given together")
    if num_expert_group is not None:
        if num_expert_group < 1 or e % num_expert_group:
            raise sb.InvalidArgumentError(
                f"`num_expert_group` must divide num_experts={e} (got {num_expert_group})"
            )
        if not 1 <= topk_group <= num_expert_group:  # type: ignore[operator]
            raise sb.InvalidArgumentError(f"`topk_group` must be between 1 and {num_expert_group} (got {topk_group})")
        if top_k > topk_group * (e // num_expert_group):  # type: ignore[operator]
            raise sb.InvalidArgumentError(
                f"`top_k`={top_k} needs more experts than the {topk_group} chosen groups hold"
            )
    if e_score_correction_bias is not None:
        if e_score_correction_bias.shape != (e,):
            raise sb.InvalidArgumentError(
                f"`e_score_correction_bias` must have shape [{e}] (got {list(e_score_correction_bias.shape)})"
            )
        if e_score_correction_bias.device != router_logits.device:
            raise sb.InvalidArgumentError("`e_score_correction_bias` must be on the logits' device")
    if router_logits.shape[1] <= rk.MAX_EXPERTS and (num_expert_group or 1) <= rk.MAX_GROUPS and top_k <= 32 \
            and router_logits.dtype in (torch.float32, torch.bfloat16, torch.float16) and rk.available(router_logits):
        # Under torch.compile through a custom op (one opaque call for fullgraph); eager calls
        # skip the op's dispatch, which costs more host time than the kernel launch.
        select = _select_op if torch.compiler.is_compiling() else _select_impl
        return select(router_logits, top_k, scoring, renormalize, num_expert_group or 0, topk_group or 0,
                          e_score_correction_bias, float(routed_scaling_factor))
    return _select_experts_torch(router_logits, top_k, scoring, renormalize, num_expert_group, topk_group,
                                 e_score_correction_bias, routed_scaling_factor)


def _select_impl(
    router_logits: torch.Tensor,
    top_k: int,
    scoring: str,
    renormalize: bool,
    num_expert_group: int,
    topk_group: int,
    e_score_correction_bias: torch.Tensor | None,
    routed_scaling_factor: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The selection kernel as ``torch.ops.staticbatch_moe.select_experts`` (0 groups: none)."""
    return rk.select(router_logits, top_k, scoring, renormalize, num_expert_group or None, topk_group or None,
                     e_score_correction_bias, routed_scaling_factor)


_select_op = torch.library.custom_op("staticbatch_moe::select_experts", mutates_args=())(_select_impl)


@_select_op.register_fake
def _(router_logits, top_k, scoring, renormalize, num_expert_group, topk_group, e_score_correction_bias,  # type: ignore[no-untyped-def]
      routed_scaling_factor):
    t = router_logits.shape[0]
    return (router_logits.new_empty(t, top_k, dtype=torch.float32), router_logits.new_empty(t, top_k, dtype=torch.int32))


def _select_experts_torch(router_logits: torch.Tensor, top_k: int, scoring: str, renormalize: bool,
                          num_expert_group: int | None, topk_group: int | None,
                          e_score_correction_bias: torch.Tensor | None,
                          routed_scaling_factor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`select_experts` in torch operations (the CPU path, and the reference of the kernel)."""
    e = router_logits.shape[1]
    logits = router_logits.float()
    if scoring == "softmax_selected":
        values, ids = torch.topk(logits, top_k, dim=-1)
        weights = torch.softmax(values, dim=-1)
        return weights * routed_scaling_factor, ids.to(torch.int32)
    scores = torch.softmax(logits, dim=-1) if scoring == "softmax" else torch.sigmoid(logits)
    choice = scores if e_score_correction_bias is None else scores + e_score_correction_bias.float()
    if num_expert_group is not None:
        t = choice.shape[0]
        grouped = choice.view(t, num_expert_group, e // num_expert_group)
        if e_score_correction_bias is not None:
            group_scores = grouped.topk(min(2, grouped.shape[-1]), dim=-1).values.sum(dim=-1)
        else:
            group_scores = grouped.amax(dim=-1)
        group_idx = torch.topk(group_scores, topk_group, dim=-1, sorted=False).indices  # type: ignore[arg-type]
        group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1.0)
        expert_mask = group_mask.unsqueeze(-1).expand_as(grouped).reshape(t, e)
        choice = choice.masked_fill(expert_mask == 0, float("-inf"))
    ids = torch.topk(choice, top_k, dim=-1).indices
    weights = scores.gather(1, ids)
    if renormalize:
        weights = weights / (weights.sum(dim=-1, keepdim=True) + (1e-20 if scoring == "sigmoid" else 0.0))
    return weights * routed_scaling_factor, ids.to(torch.int32)


def combine(y: torch.Tensor, slot_to_row: torch.Tensor, topk_weights: torch.Tensor, out: torch.Tensor | None = None,
            *, bias: torch.Tensor | None = None, topk_ids: torch.Tensor | None = None) -> torch.Tensor:
    """``out[t] = sum_j topk_weights[t, j] * (y[slot_to_row[t, j]] + bias[topk_ids[t, j]])`` in
    float32, slots in order.

    Deterministic (no atomics); skipped slots (row -1) contribute nothing. On a Hopper GPU one
    kernel (a block per token, 16-byte loads); elsewhere torch operations.

    Parameters
    ----------
    y : torch.Tensor
        ``[T * k, H]``, the experts' outputs in the grouped layout.
    slot_to_row : torch.Tensor
        int32 ``[T, k]`` from the routing plan.
    topk_weights : torch.Tensor
        ``[T, k]``, any float dtype.
    out : torch.Tensor, optional
        ``[T, H]``, the dtype of ``y`` or float32.
    bias, topk_ids : torch.Tensor, optional
        ``[E, H]`` per-expert output bias (GPT-OSS's ``w2_bias``) and the (local) expert id of
        each slot, given together.
    """
    t, k = slot_to_row.shape
    h = y.shape[1]
    if (bias is None) != (topk_ids is None):
        raise sb.InvalidArgumentError("`bias` and `topk_ids` must be given together")
    if out is not None and (tuple(out.shape) != (t, h) or out.dtype not in (y.dtype, torch.float32)):
        raise sb.InvalidArgumentError(
            f"`out` must be [{t}, {h}] of dtype {y.dtype} or torch.float32 (got {list(out.shape)}, {out.dtype})"
        )
    if (y.dtype in (torch.bfloat16, torch.float16) and h % 8 == 0 and y.is_contiguous() and rk.available(y)
            and (out is None or out.is_contiguous()) and (bias is None or (bias.dtype == y.dtype and bias.is_contiguous()))):
        result = out if out is not None else torch.empty(t, h, dtype=y.dtype, device=y.device)
        ids = None if topk_ids is None else topk_ids.to(torch.int32).contiguous()
        return rk.combine(y, slot_to_row.to(torch.int32).contiguous(), topk_weights.float().contiguous(), result,
                          bias, ids)
    rows = slot_to_row.long()
    valid = rows >= 0
    gathered = y[rows.clamp(min=0)].float()  # [T, k, H]
    if bias is not None:
        gathered = gathered + bias.float()[topk_ids.long().clamp(min=0)]  # type: ignore[union-attr]
    w = torch.where(valid, topk_weights.float(), torch.zeros((), device=y.device))
    summed = (gathered * w.unsqueeze(-1)).sum(dim=1)
    if out is None:
        return summed.to(y.dtype)
    out.copy_(summed)
    return out


def _layer_tilings(x: torch.Tensor, ids: torch.Tensor, e: int, two_i: int, h: int, fused: bool,
                   tiled: tuple[bool, bool] = (False, False)) -> list:
    """The (block_m, block_n, n, split_k, rows) of the tile classes of the layer's two GEMMs, whose tile
    prefix sums are built before them; none off the kernel path. ``tiled``: whether each GEMM's
    weight (gate/up, down) is a TiledWeight, which the heuristic's classes depend on."""
    if x.dtype not in (torch.bfloat16, torch.float16) or not rk.available(x):
        return []
    dtype = "bf16" if x.dtype == torch.bfloat16 else "fp16"
    rows, t = ids.numel(), ids.shape[0]
    pair = choose_mlp_config(rows, e, h, two_i // 2, dtype, num_tokens=t) if fused else None
    if pair is not None:  # both GEMMs in one launch (grouped_mlp)
        return [(pair.block_m, pair.block_n, n, 1, (0, None)) for n in (two_i, h)]
    up = choose_tile_classes(rows, e, two_i, h, dtype, "silu_and_mul" if fused else None, True, num_tokens=t,
                             tiled_w=tiled[0])
    down = choose_tile_classes(rows, e, h, two_i // 2, dtype, None, False, num_tokens=t, tiled_w=tiled[1])
    return [(c.config.block_m, c.config.block_n, n, c.config.split_k, (c.min_rows, c.max_rows))
            for classes, n in ((up, two_i), (down, h)) for c in classes]


def _row_experts(plan: Any) -> torch.Tensor:
    """The expert of every grouped row (int64 ``[T * k]``; rows past M get E), with no sync."""
    rows = torch.arange(plan.num_rows, device=plan.device)
    return torch.searchsorted(plan.expert_starts, rows, right=True) - 1


def _swigluoai(g: torch.Tensor, alpha: float, limit: float) -> torch.Tensor:
    """GPT-OSS's clamped SwiGLU on interleaved gate/up columns ``[..., 2I] -> [..., I]``."""
    gate, up = g[..., ::2], g[..., 1::2]
    gate = gate.clamp(max=limit)
    up = up.clamp(min=-limit, max=limit)
    return (up + 1) * (gate * torch.sigmoid(gate * alpha))


def fused_moe(
    hidden_states: torch.Tensor,
    w1: torch.Tensor | TiledWeight | GateUpWeight,
    w2: torch.Tensor | TiledWeight,
    topk_weights: torch.Tensor,
    topk_ids: torch.Tensor,
    *,
    activation: str = "silu",
    w1_bias: torch.Tensor | None = None,
    w2_bias: torch.Tensor | None = None,
    expert_map: torch.Tensor | None = None,
    global_num_experts: int | None = None,
    swiglu_alpha: float = SWIGLUOAI_ALPHA,
    swiglu_limit: float = SWIGLUOAI_LIMIT,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run every token through its top-k experts and combine the results.

    Parameters
    ----------
    hidden_states : torch.Tensor
        ``[T, H]``, bf16 or fp16 (float32 on the CPU reference path).
    w1 : torch.Tensor, TiledWeight or GateUpWeight
        ``[E, 2I, H]``: gate rows then up rows (vLLM's layout) for ``"silu"``; gate and up
        interleaved row by row for ``"swigluoai"`` (GPT-OSS checkpoints). A :class:`GateUpWeight`
        (``pack_gate_up(w1, tiled=True)``, once at load time) lets ``"silu"`` run with the
        activation fused into the GEMM; otherwise the activation runs as a separate pass. Tiled
        weights (:func:`pack_weight`, ``tiled=True``) stream faster (see :class:`TiledWeight`).
    w2 : torch.Tensor or TiledWeight
        ``[E, H, I]``.
    topk_weights, topk_ids : torch.Tensor
        ``[T, k]`` float and int32/int64, e.g. from :func:`select_experts`.
    activation : {"silu", "swigluoai"}
    w1_bias, w2_bias : torch.Tensor, optional
        ``[E, 2I]`` and ``[E, H]``.
    expert_map : torch.Tensor, optional
        int ``[global_num_experts]``: the local id of each global expert, -1 where the expert is
        not on this rank (its slots contribute nothing).
    global_num_experts : int, optional
        Required with ``expert_map``.
    out : torch.Tensor, optional
        ``[T, H]``, same dtype as ``hidden_states``.

    Returns
    -------
    torch.Tensor
        ``[T, H]``.
    """
    if activation not in _ACTIVATIONS:
        raise sb.InvalidArgumentError(f"`activation` must be one of {_ACTIVATIONS} (got {activation!r})")
    if not isinstance(hidden_states, torch.Tensor) or hidden_states.dim() != 2:
        raise sb.InvalidArgumentError(
            f"`hidden_states` must be a [num_tokens, hidden] tensor (got {getattr(hidden_states, 'shape', None)})"
        )
    weight1 = w1.packed if isinstance(w1, GateUpWeight) else w1
    for name, w in (("w1", weight1), ("w2", w2)):
        if not (isinstance(w, TiledWeight) or (isinstance(w, torch.Tensor) and w.dim() == 3)):
            raise sb.InvalidArgumentError(
                f"`{name}` must be a 3-D tensor or a TiledWeight (`w1` [E, 2I, H], `w2` [E, H, I]) "
                f"(got {type(w).__name__} of shape {list(getattr(w, 'shape', []))})"
            )
    e, two_i, h = weight1.shape
    if tuple(w2.shape) != (e, h, two_i // 2):
        raise sb.InvalidArgumentError(f"`w2` must have shape [{e}, {h}, {two_i // 2}] to match `w1` (got {list(w2.shape)})")
    if hidden_states.shape[1] != h:
        raise sb.InvalidArgumentError(f"`hidden_states` must have hidden={h} columns (got {hidden_states.shape[1]})")
    if isinstance(w1, GateUpWeight) and activation != "silu":
        raise sb.InvalidArgumentError("a GateUpWeight is packed for activation='silu'; pass the plain w1 for 'swigluoai'")
    if topk_ids.shape != topk_weights.shape or topk_ids.dim() != 2 or topk_ids.shape[0] != hidden_states.shape[0]:
        raise sb.InvalidArgumentError(
            f"`topk_ids` and `topk_weights` must both be [num_tokens={hidden_states.shape[0]}, k] "
            f"(got {list(topk_ids.shape)} and {list(topk_weights.shape)})"
        )
    for name, bias, shape in (("w1_bias", w1_bias, (e, two_i)), ("w2_bias", w2_bias, (e, h))):
        if bias is not None and tuple(bias.shape) != shape:
            raise sb.InvalidArgumentError(f"`{name}` must have shape {list(shape)} (got {list(bias.shape)})")
    ids = topk_ids
    if expert_map is not None:
        if global_num_experts is None or expert_map.shape != (global_num_experts,):
            raise sb.InvalidArgumentError(
                f"`expert_map` must have shape [global_num_experts] with `global_num_experts` given "
                f"(got {list(expert_map.shape)}, {global_num_experts})"
            )
        if ids.device.type == "cpu" and ids.numel() and bool(((ids < -1) | (ids >= global_num_experts)).any()):
            raise sb.InvalidArgumentError(f"`topk_ids` must hold ids in [0, {global_num_experts}) or -1")
        mapped = expert_map.to(ids.device).long()[ids.long().clamp(0, global_num_experts - 1)]
        ids = torch.where(ids >= 0, mapped, torch.full_like(mapped, -1))
    fused = isinstance(w1, GateUpWeight) and w1_bias is None
    tilings = _layer_tilings(hidden_states, ids, e, two_i, h, fused,
                             (isinstance(weight1, TiledWeight), isinstance(w2, TiledWeight)))
    # The routing pass builds up to four tile prefix sums; any other is built here, before the
    # first GEMM, so the down GEMM can still launch programmatically.
    plan = route_plan(ids, e, tilings=tilings[:4])
    for t in tilings[4:]:
        plan.tile_offsets(*t)
    x = hidden_states
    if fused:
        # One launch for both GEMMs at decode, else gate/up then down (a programmatic dependent).
        y = grouped_mlp(x, w1, w2, plan)
    else:
        g = grouped_gemm(x, weight1, plan)
        if isinstance(w1, GateUpWeight):  # packed but with a bias: undo the interleave on the output
            g = g.view(g.shape[0], -1, 2, 8).transpose(1, 2).reshape(g.shape[0], -1)
        if w1_bias is not None:
            g = (g.float() + w1_bias.float()[_row_experts(plan).clamp(max=e - 1)]).to(g.dtype)
        if activation == "silu":
            half = g.shape[1] // 2
            mid = (torch.nn.functional.silu(g[:, :half].float()) * g[:, half:].float()).to(g.dtype)
        else:
            mid = _swigluoai(g.float(), swiglu_alpha, swiglu_limit).to(g.dtype)
        # A programmatic dependent of the kernel before it (which writes only `mid`): its first weight
        # stages load while that kernel finishes.
        y = grouped_gemm(mid, w2, plan, gather=False, programmatic_launch=True)
    if w2_bias is None:
        return combine(y, plan.slot_to_row, topk_weights, out=out)
    return combine(y, plan.slot_to_row, topk_weights, out=out, bias=w2_bias.to(y.dtype), topk_ids=ids)


class MoE(nn.Module):
    """A sparse MoE block: router, experts, optional shared experts.

    ``forward(x)`` maps ``[..., H]`` to ``[..., H]``: select experts, run them through
    :func:`fused_moe`, add the shared experts' output (times ``sigmoid(shared_gate(x))`` when
    the block has a shared-expert gate, as in Qwen2-MoE).

    The gate/up weight is kept in the packed layout of :class:`GateUpWeight` for the SiLU
    activation (``w1`` holds interleaved rows); :meth:`load_experts` takes the usual
    ``[gate; up]`` layout and packs it.

    ``weight_layout`` says how ``w1`` and ``w2`` are stored: ``"tiled"`` as the ``tiles`` of a
    :class:`TiledWeight` (``[E, ceil(N / 64), ceil(K / 64), 64, 64]``), which the kernels stream
    faster; ``"plain"`` as ``[E, 2I, H]`` and ``[E, H, I]``; ``"auto"`` (the default) tiled for
    bf16 and fp16, plain otherwise. :meth:`expert_weights` gives them as :func:`fused_moe`
    takes them, :meth:`unpacked_experts` in the checkpoint's layout. ``load_state_dict``
    takes either layout and converts.
    """

    def __init__(
        self,
        hidden_size: int,
        intermediate_size: int,
        num_experts: int,
        top_k: int,
        *,
        scoring: str = "softmax",
        renormalize: bool = True,
        num_expert_group: int | None = None,
        topk_group: int | None = None,
        routed_scaling_factor: float = 1.0,
        correction_bias: bool = False,
        router_bias: bool = False,
        activation: str = "silu",
        expert_bias: bool = False,
        shared_intermediate_size: int = 0,
        shared_gate: bool = False,
        swiglu_alpha: float = SWIGLUOAI_ALPHA,
        swiglu_limit: float = SWIGLUOAI_LIMIT,
        router_dtype: torch.dtype | None = None,
        weight_layout: str = "auto",
        dtype: torch.dtype | None = None,
        device: Any = None,
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise sb.InvalidArgumentError(f"`activation` must be one of {_ACTIVATIONS} (got {activation!r})")
        if weight_layout not in _WEIGHT_LAYOUTS:
            raise sb.InvalidArgumentError(f"`weight_layout` must be one of {_WEIGHT_LAYOUTS} (got {weight_layout!r})")
        half = (dtype or torch.get_default_dtype()) in (torch.bfloat16, torch.float16)
        if weight_layout == "tiled" and not half:
            raise sb.InvalidArgumentError(
                f"`weight_layout='tiled'` needs dtype torch.bfloat16 or torch.float16 (got {dtype or torch.get_default_dtype()})"
            )
        if not 1 <= top_k <= num_experts:
            raise sb.InvalidArgumentError(f"`top_k` must be between 1 and num_experts={num_experts} (got {top_k})")
        if activation == "silu" and intermediate_size % 8:
            raise sb.InvalidArgumentError(f"`intermediate_size` must be a multiple of 8 (got {intermediate_size})")
        kw = {"dtype": dtype, "device": device}
        self.hidden_size, self.intermediate_size = hidden_size, intermediate_size
        self.num_experts, self.top_k = num_experts, top_k
        self.scoring, self.renormalize = scoring, renormalize
        self.num_expert_group, self.topk_group = num_expert_group, topk_group
        self.routed_scaling_factor = routed_scaling_factor
        self.activation, self.swiglu_alpha, self.swiglu_limit = activation, swiglu_alpha, swiglu_limit
        # DeepSeek-V3 keeps its router in float32 whatever the model's dtype (router_dtype).
        self.router = nn.Linear(hidden_size, num_experts, bias=router_bias, dtype=router_dtype or dtype, device=device)
        self.register_buffer("e_score_correction_bias", torch.zeros(num_experts, device=device) if correction_bias else None)
        #: Whether ``w1`` and ``w2`` hold tiled weights (see ``weight_layout``).
        self.tiled = weight_layout == "tiled" or (weight_layout == "auto" and half)
        w1 = torch.empty(num_experts, 2 * intermediate_size, hidden_size, **kw)
        w2 = torch.empty(num_experts, hidden_size, intermediate_size, **kw)
        with torch.no_grad():
            w1.uniform_(-1 / math.sqrt(hidden_size), 1 / math.sqrt(hidden_size))
            w2.uniform_(-1 / math.sqrt(intermediate_size), 1 / math.sqrt(intermediate_size))
        self.w1 = nn.Parameter(self._stored(w1))
        self.w2 = nn.Parameter(self._stored(w2))
        self.w1_bias = nn.Parameter(torch.zeros(num_experts, 2 * intermediate_size, **kw)) if expert_bias else None
        self.w2_bias = nn.Parameter(torch.zeros(num_experts, hidden_size, **kw)) if expert_bias else None
        self.shared = None
        if shared_intermediate_size:
            self.shared = nn.ModuleDict({
                "gate_proj": nn.Linear(hidden_size, shared_intermediate_size, bias=False, **kw),
                "up_proj": nn.Linear(hidden_size, shared_intermediate_size, bias=False, **kw),
                "down_proj": nn.Linear(shared_intermediate_size, hidden_size, bias=False, **kw),
            })
        self.shared_gate = nn.Linear(hidden_size, 1, bias=False, **kw) if shared_gate else None

    @property
    def packed(self) -> bool:
        """Whether ``w1`` holds the interleaved layout of the fused SiLU epilogue."""
        return self.activation == "silu"

    def _stored(self, w: torch.Tensor) -> torch.Tensor:
        """``w`` ``[E, N, K]`` in this module's storage layout."""
        return pack_weight(w).tiles if self.tiled else w

    def _weight_shapes(self) -> dict[str, tuple[int, int]]:
        """(N, K) of ``w1`` and ``w2``."""
        h, i = self.hidden_size, self.intermediate_size
        return {"w1": (2 * i, h), "w2": (h, i)}

    def expert_weights(self) -> tuple[Any, Any]:
        """``(w1, w2)`` as :func:`fused_moe` takes them: ``w1`` a :class:`GateUpWeight` for SiLU,
        each a :class:`TiledWeight` when the module stores tiled weights (views of the parameters)."""
        shapes = self._weight_shapes()
        w1: Any = TiledWeight(self.w1, *shapes["w1"]) if self.tiled else self.w1
        w2: Any = TiledWeight(self.w2, *shapes["w2"]) if self.tiled else self.w2
        return (GateUpWeight(w1) if self.packed else w1), w2

    @torch.no_grad()
    def unpacked_experts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(w1, w2)`` as :meth:`load_experts` takes them: ``[E, 2I, H]`` (``[gate; up]`` for
        SiLU) and ``[E, H, I]``, new tensors."""
        w1, w2 = self.expert_weights()
        w1 = w1.unpack() if isinstance(w1, (GateUpWeight, TiledWeight)) else w1.detach().clone()
        w2 = w2.unpack() if isinstance(w2, TiledWeight) else w2.detach().clone()
        return w1, w2

    @torch.no_grad()
    def load_experts(self, w1: torch.Tensor, w2: torch.Tensor, w1_bias: torch.Tensor | None = None,
                     w2_bias: torch.Tensor | None = None) -> MoE:
        """Copy expert weights in: ``w1`` ``[E, 2I, H]`` (gate rows then up rows for SiLU; as the
        checkpoint has them for swigluoai), ``w2`` ``[E, H, I]``; packs ``w1`` for SiLU and tiles
        both when the module stores tiled weights."""
        for name, w in (("w1", w1), ("w2", w2)):
            want = (self.num_experts, *self._weight_shapes()[name])
            if not isinstance(w, torch.Tensor) or tuple(w.shape) != want:
                raise sb.InvalidArgumentError(
                    f"`{name}` must be a tensor of shape {list(want)} (got {list(getattr(w, 'shape', []))})"
                )
        w1 = w1.to(self.w1.dtype)
        self.w1.copy_(self._stored(pack_gate_up(w1).packed if self.packed else w1))
        self.w2.copy_(self._stored(w2.to(self.w2.dtype)))
        if w1_bias is not None:
            self.w1_bias.copy_(w1_bias)  # type: ignore[union-attr]
        if w2_bias is not None:
            self.w2_bias.copy_(w2_bias)  # type: ignore[union-attr]
        return self

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        # Expert weights saved in the other layout (plain [E, N, K] or tiled) are converted.
        for name, (n, k) in self._weight_shapes().items():
            v = state_dict.get(prefix + name)
            if isinstance(v, torch.Tensor) and self.tiled and v.dim() == 3:
                state_dict[prefix + name] = pack_weight(v.to(self.w1.dtype)).tiles
            elif isinstance(v, torch.Tensor) and not self.tiled and v.dim() == 5:
                state_dict[prefix + name] = TiledWeight(v, n, k).unpack()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(topk_weights, topk_ids) for ``x`` ``[T, H]``."""
        return select_experts(
            self.router(x.to(self.router.weight.dtype)), self.top_k, scoring=self.scoring, renormalize=self.renormalize,
            num_expert_group=self.num_expert_group, topk_group=self.topk_group,
            e_score_correction_bias=cast(torch.Tensor | None, self.e_score_correction_bias),
            routed_scaling_factor=self.routed_scaling_factor,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, self.hidden_size)
        weights, ids = self.route(x2)
        from staticbatch_moe.ops import fused_moe_impl, fused_moe_op

        # One custom op under torch.compile(fullgraph=True); eager calls (and CUDA-graph
        # captures of them) run the same function without the op's dispatch cost on the host.
        op = fused_moe_op if torch.compiler.is_compiling() else fused_moe_impl
        y = op(x2, self.w1, self.w2, weights, ids, self.activation, self.packed, self.w1_bias,
               self.w2_bias, self.swiglu_alpha, self.swiglu_limit, self.intermediate_size if self.tiled else 0)
        if self.shared is not None:
            s = self.shared["down_proj"](torch.nn.functional.silu(self.shared["gate_proj"](x2)) * self.shared["up_proj"](x2))
            if self.shared_gate is not None:
                s = torch.sigmoid(self.shared_gate(x2)) * s
            y = y + s
        return y.reshape(shape)
