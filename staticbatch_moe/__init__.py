"""staticbatch_moe: Mixture-of-Experts inference on staticbatch (routing, grouped expert
GEMMs with fused activation, weighted combine).

Work in progress: the grouped GEMM and the layer are tracked by their own issues.
"""

from __future__ import annotations

__all__: list[str] = []
