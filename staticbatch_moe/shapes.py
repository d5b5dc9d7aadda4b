"""MoE shapes of public models: (hidden H, intermediate I per expert, experts E, top-k).

Used by the benchmarks, the tests and the demo; bytes per expert in bf16 are 3 * H * I * 2.
"""

from __future__ import annotations

__all__ = ["MODEL_SHAPES"]

MODEL_SHAPES: dict[str, tuple[int, int, int, int]] = {
    "Mixtral-8x7B": (4096, 14336, 8, 2),
    "Qwen3-30B-A3B": (2048, 768, 128, 8),
    "DeepSeek-V3": (7168, 2048, 256, 8),
    "Qwen3-235B-A22B": (4096, 1536, 128, 8),
    "GPT-OSS-120B": (2880, 2880, 128, 4),
}
