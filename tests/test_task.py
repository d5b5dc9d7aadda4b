"""Task kinds: parameters, generated source and errors (pure CPU)."""

from __future__ import annotations

import pytest
import torch

import staticbatch as sb
from staticbatch.task import Param


def test_param_parsing() -> None:
    assert Param.parse("const float* x") == Param("const float*", "x")
    assert Param.parse("float *y") == Param("float*", "y")
    assert Param.parse(("int64_t", "n")) == Param("int64_t", "n")
    assert Param.parse("const __nv_bfloat16* __restrict__ w").pointee == "__nv_bfloat16"


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("float", "look like"),
        ("std::string s", "type must be"),
        ("const bogus_t* x", "must point to"),
        ("float sb_x", "C identifier"),
        ("float p", "C identifier"),
    ],
)
def test_bad_params(spec: str, match: str) -> None:
    with pytest.raises(sb.InvalidArgumentError, match=match):
        Param.parse(spec)


def test_generated_source_names_and_shape() -> None:
    kind = sb.TaskKind("demo", (16, 32), ["const float* x", "int64_t n"], "__device__ void tile(const Params& p, const Tile& t) {}")
    src = kind.source(sb.Mapper("warp_scan", 2))
    assert 'extern "C" __global__ void __launch_bounds__(128) sb_demo_t16x32_ws2(' in src
    assert "staticbatch::WarpScanMapper<2>" in src
    assert "TileShape<16, 32>" in src
    assert "const float* x;" in src and "int64_t n;" in src


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "bad name"}, "`name`"),
        ({"block_size": 100}, "`block_size`"),
        ({"block_size": 2048}, "`block_size`"),
        ({"shared_bytes": -1}, "`shared_bytes`"),
        ({"params": ["float* x", "int x"]}, "distinct"),
        ({"body": "nothing here"}, "`body`"),
        ({"tiling": 0}, "tile_shape"),
    ],
)
def test_bad_kind(kwargs: dict, match: str) -> None:
    args = {"name": "k", "tiling": 8, "params": ["float* x"], "body": "__device__ void tile(const Params& p, const Tile& t) {}"}
    args.update(kwargs)
    with pytest.raises(sb.InvalidArgumentError, match=match):
        sb.TaskKind(**args)


def test_scalar_and_pointer_conversion() -> None:
    dev = torch.device("cpu")
    n = Param("int32_t", "n")
    assert n.convert(5, "k", dev).dtype.name == "int32"
    with pytest.raises(sb.InvalidArgumentError, match="between -2147483648 and 2147483647"):
        n.convert(2**31, "k", dev)
    with pytest.raises(sb.InvalidArgumentError, match="must be an integer"):
        n.convert(1.5, "k", dev)
    with pytest.raises(sb.InvalidArgumentError, match="must be a number"):
        n.convert("3", "k", dev)
    f = Param("float", "alpha")
    assert f.convert(0.5, "k", dev).dtype.name == "float32"
    x = Param("const float*", "x")
    assert x.convert(None, "k", dev) is None
    with pytest.raises(sb.InvalidArgumentError, match="dtype torch.float32"):
        x.convert(torch.zeros(3, dtype=torch.float16), "k", dev)
    with pytest.raises(sb.InvalidArgumentError, match="contiguous"):
        x.convert(torch.zeros(4, 4).t(), "k", dev)
    with pytest.raises(sb.InvalidArgumentError, match="torch.Tensor or None"):
        x.convert([1.0], "k", dev)
    with pytest.raises(sb.InvalidArgumentError, match="must be on"):
        x.convert(torch.zeros(3), "k", torch.device("cuda", 0))


def test_launch_checks_before_touching_a_gpu() -> None:
    kind = sb.TaskKind("k", 8, ["float* x"], "__device__ void tile(const Params& p, const Tile& t) {}")
    kernel = sb.BatchedKernel.__new__(sb.BatchedKernel)
    kernel.kind, kernel.mapper, kernel.name = kind, sb.Mapper("warp_scan", 1), "k"
    with pytest.raises(sb.InvalidArgumentError, match="tile shape"):
        kernel.launch(sb.plan([1], 16), torch.zeros(1))
    with pytest.raises(sb.InvalidArgumentError, match="at most 32 tasks"):
        kernel.launch(sb.plan([1] * 33, 8), torch.zeros(1))
    with pytest.raises(sb.InvalidArgumentError, match="takes 1 arguments"):
        kernel.launch(sb.plan([1], 8))
    with pytest.raises(sb.InvalidArgumentError, match="TilePlan or DevicePlan"):
        kernel.launch([1, 2], torch.zeros(1))
