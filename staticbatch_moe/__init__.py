"""staticbatch_moe: Mixture-of-Experts inference on staticbatch.

Routing plans built on the device (:func:`route_plan`), the expert GEMMs of a layer as one
statically batched Hopper kernel with the gate/up activation fused (:func:`grouped_gemm`),
both GEMMs of a decode layer in one launch (:func:`grouped_mlp`),
their plain-torch references, and the layer around them: expert selection, the fused MoE
forward with its weighted combine, an ``nn.Module`` (:class:`MoE`) and a drop-in for Hugging
Face transformers' MoE blocks (``staticbatch_moe.hf.patch``).
"""

from __future__ import annotations

from staticbatch_moe._gemm_config import GemmConfig, TileClass, choose_config, choose_tile_classes
from staticbatch_moe.gemm import (
    GateUpWeight,
    TiledWeight,
    grouped_gemm,
    grouped_gemm_reference,
    grouped_mlp,
    grouped_mlp_reference,
    pack_gate_up,
    pack_weight,
)
from staticbatch_moe.layer import MoE, combine, fused_moe, select_experts
from staticbatch_moe.routing import RoutePlan, route_plan
from staticbatch_moe.shapes import MODEL_SHAPES

__all__ = [
    "MODEL_SHAPES",
    "MoE",
    "combine",
    "fused_moe",
    "select_experts",
    "GateUpWeight",
    "TiledWeight",
    "GemmConfig",
    "RoutePlan",
    "TileClass",
    "choose_config",
    "choose_tile_classes",
    "grouped_gemm",
    "grouped_gemm_reference",
    "grouped_mlp",
    "grouped_mlp_reference",
    "pack_gate_up",
    "pack_weight",
    "route_plan",
]
