"""The MoE layer against Hugging Face transformers' own blocks (CPU, float32), expert selection,
the combine, and the layer's input checks."""

from __future__ import annotations

import pytest
import torch

import staticbatch as sb
import staticbatch_moe as moe

transformers = pytest.importorskip("transformers", minversion="5.0", reason="needs transformers >= 5 (pip install -e .[hf])")

from staticbatch_moe import hf  # noqa: E402

H, INTER, E = 64, 32, 8


def _randomise(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.02 if "bias" in name else 0.3))
        for name, b in module.named_buffers():
            if "correction_bias" in name:
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)


def _blocks() -> dict:
    from transformers import DeepseekV3Config, GptOssConfig, MixtralConfig, OlmoeConfig, Qwen2MoeConfig, Qwen3MoeConfig
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MoE
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssMLP
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock
    from transformers.models.olmoe.modeling_olmoe import OlmoeSparseMoeBlock
    from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeSparseMoeBlock
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    return {
        "mixtral": lambda: MixtralSparseMoeBlock(MixtralConfig(hidden_size=H, intermediate_size=INTER, num_local_experts=E,
                                                               num_experts_per_tok=2)),
        "qwen2_moe": lambda: Qwen2MoeSparseMoeBlock(Qwen2MoeConfig(hidden_size=H, moe_intermediate_size=INTER, num_experts=E,
                                                                   num_experts_per_tok=4, norm_topk_prob=False,
                                                                   shared_expert_intermediate_size=48)),
        "qwen3_moe": lambda: Qwen3MoeSparseMoeBlock(Qwen3MoeConfig(hidden_size=H, moe_intermediate_size=INTER, num_experts=E,
                                                                   num_experts_per_tok=2, norm_topk_prob=True)),
        "olmoe": lambda: OlmoeSparseMoeBlock(OlmoeConfig(hidden_size=H, intermediate_size=INTER, num_experts=E,
                                                         num_experts_per_tok=8)),
        "deepseek_v3": lambda: DeepseekV3MoE(DeepseekV3Config(hidden_size=H, moe_intermediate_size=INTER, n_routed_experts=16,
                                                              num_experts_per_tok=4, n_group=4, topk_group=2,
                                                              n_shared_experts=1, routed_scaling_factor=2.5,
                                                              norm_topk_prob=True)),
        "gpt_oss": lambda: GptOssMLP(GptOssConfig(hidden_size=H, intermediate_size=INTER, num_local_experts=E,
                                                  num_experts_per_tok=2)),
    }


@pytest.mark.parametrize("name", ["mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v3", "gpt_oss"])
@pytest.mark.parametrize("tokens", [1, 7, 64])
def test_patched_block_matches_transformers(name: str, tokens: int) -> None:
    block = _blocks()[name]().eval()
    _randomise(block, seed=tokens)
    holder = torch.nn.Sequential(block)
    x = torch.randn(2, tokens, H, generator=torch.Generator().manual_seed(99))
    with torch.no_grad():
        ref = block(x)
        assert hf.patch(holder) == ["0"]
        assert isinstance(holder[0], hf.PatchedBlock)
        got = holder[0](x)
    if name == "gpt_oss":
        (ref, ref_scores), (got, got_scores) = ref, got
        assert torch.allclose(got_scores, ref_scores, atol=1e-6)
    assert got.shape == ref.shape
    err = ((got - ref).norm() / ref.norm()).item()
    assert err < 1e-5, err


def test_whole_model_logits_after_patch() -> None:
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

    torch.manual_seed(0)
    config = Qwen2MoeConfig(vocab_size=128, hidden_size=H, intermediate_size=96, moe_intermediate_size=INTER,
                            shared_expert_intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2, num_experts=E, num_experts_per_tok=2, max_position_embeddings=64)
    model = Qwen2MoeForCausalLM(config).eval()
    _randomise(model, seed=1)
    ids = torch.randint(0, 128, (2, 12))
    with torch.no_grad():
        ref = model(ids).logits
        replaced = hf.patch(model)
        got = model(ids).logits
    assert len(replaced) == 2
    assert ((got - ref).norm() / ref.norm()).item() < 1e-5


def test_unsupported_blocks_are_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    class ToyMoeBlock(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    model = torch.nn.Sequential(ToyMoeBlock())
    with caplog.at_level("INFO", logger="staticbatch.moe.hf"):
        assert hf.patch(model) == []
    assert isinstance(model[0], ToyMoeBlock)
    assert "left 0 (ToyMoeBlock) alone" in caplog.text


def _hf_softmax_topk(logits: torch.Tensor, k: int, renorm: bool) -> tuple[torch.Tensor, torch.Tensor]:
    probs = torch.softmax(logits.float(), dim=-1)
    w, i = torch.topk(probs, k, dim=-1)
    if renorm:
        w = w / w.sum(-1, keepdim=True)
    return w, i


@pytest.mark.parametrize("k", [1, 2, 4, 6, 8])
@pytest.mark.parametrize("renorm", [False, True])
def test_select_experts_softmax_matches_torch_topk(k: int, renorm: bool) -> None:
    logits = torch.randn(33, 16)
    logits[3] = 0.5  # all tied: the ids must be torch.topk's
    w, i = moe.select_experts(logits, k, renormalize=renorm)
    rw, ri = _hf_softmax_topk(logits, k, renorm)
    assert i.dtype == torch.int32 and w.dtype == torch.float32
    assert torch.equal(i.long(), ri) and torch.allclose(w, rw, atol=1e-7)


def test_select_experts_errors() -> None:
    logits = torch.randn(4, 16)
    with pytest.raises(sb.InvalidArgumentError, match=r"`top_k` must be between 1 and num_experts=16 \(got 0\)"):
        moe.select_experts(logits, 0)
    with pytest.raises(sb.InvalidArgumentError, match="`scoring`"):
        moe.select_experts(logits, 2, scoring="relu")
    with pytest.raises(sb.InvalidArgumentError, match="given together"):
        moe.select_experts(logits, 2, num_expert_group=4)
    with pytest.raises(sb.InvalidArgumentError, match="divide"):
        moe.select_experts(logits, 2, num_expert_group=5, topk_group=1)
    with pytest.raises(sb.InvalidArgumentError, match=r"\[16\]"):
        moe.select_experts(logits, 2, e_score_correction_bias=torch.zeros(8))
    with pytest.raises(sb.InvalidArgumentError, match="floating point"):
        moe.select_experts(logits.long(), 2)


def test_fused_moe_expert_map_and_skipped_slots() -> None:
    torch.manual_seed(3)
    t, h, i, e_global = 9, 32, 16, 6
    x = torch.randn(t, h)
    w1, w2 = torch.randn(3, 2 * i, h), torch.randn(3, h, i)
    ids = torch.randint(0, e_global, (t, 2), dtype=torch.int32)
    weights = torch.rand(t, 2)
    expert_map = torch.tensor([-1, 0, -1, 1, 2, -1])  # global experts 1, 3, 4 are local
    got = moe.fused_moe(x, w1, w2, weights, ids, expert_map=expert_map, global_num_experts=e_global)
    ref = torch.zeros(t, h)
    for tok in range(t):
        for j in range(2):
            local = int(expert_map[ids[tok, j]])
            if local >= 0:
                g = w1[local] @ x[tok]
                ref[tok] += weights[tok, j] * (w2[local] @ (torch.nn.functional.silu(g[:i]) * g[i:]))
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_fused_moe_errors() -> None:
    x, w1, w2 = torch.randn(4, 32), torch.randn(3, 32, 32), torch.randn(3, 32, 16)
    ids, wts = torch.zeros(4, 2, dtype=torch.int32), torch.ones(4, 2)
    with pytest.raises(sb.InvalidArgumentError, match="`activation`"):
        moe.fused_moe(x, w1, w2, wts, ids, activation="gelu")
    with pytest.raises(sb.InvalidArgumentError, match=r"`w2` must have shape \[3, 32, 16\]"):
        moe.fused_moe(x, w1, torch.randn(3, 16, 32), wts, ids)
    with pytest.raises(sb.InvalidArgumentError, match="num_tokens=4"):
        moe.fused_moe(x, w1, w2, wts[:3], ids[:3])
    with pytest.raises(sb.InvalidArgumentError, match="in \\[0, 3\\) or -1"):
        moe.fused_moe(x, w1, w2, wts, ids + 5)
    with pytest.raises(sb.InvalidArgumentError, match="`w1_bias`"):
        moe.fused_moe(x, w1, w2, wts, ids, w1_bias=torch.zeros(3, 31))


def test_zero_tokens_and_one_expert() -> None:
    layer = moe.MoE(32, 16, 4, 2)
    assert layer(torch.randn(0, 32)).shape == (0, 32)
    single = moe.MoE(32, 16, 1, 1)
    x = torch.randn(5, 32)
    with torch.no_grad():
        single.load_experts(torch.randn(1, 32, 32), torch.randn(1, 32, 16))
        w1 = moe.GateUpWeight(single.w1.data).unpack()[0]  # back to [gate; up]
        h = x @ w1.T
        ref = (torch.nn.functional.silu(h[:, :16]) * h[:, 16:]) @ single.w2.data[0].T
        assert torch.allclose(single(x), ref, rtol=1e-5, atol=1e-5)


def test_custom_op_and_torch_compile_fullgraph() -> None:
    torch.manual_seed(5)
    layer = moe.MoE(64, 32, 8, 2, shared_intermediate_size=48, shared_gate=True).eval()
    x = torch.randn(3, 5, 64)
    with torch.no_grad():
        eager = layer(x)
        compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
        assert torch.allclose(compiled(x), eager, rtol=1e-6, atol=1e-6)
        assert torch.allclose(compiled(torch.randn(3, 5, 64) * 0 + x), eager, rtol=1e-6, atol=1e-6)
    torch.library.opcheck(
        torch.ops.staticbatch_moe.fused_moe.default,
        (x.reshape(-1, 64), layer.w1.detach(), layer.w2.detach(), *layer.route(x.reshape(-1, 64)), "silu", True,
         None, None, 1.702, 7.0),
        test_utils=("test_schema", "test_faketensor"),  # inference only: no autograd formula
    )
    tiled = moe.MoE(64, 32, 8, 2, dtype=torch.bfloat16).eval()  # tiled weights: the op gets I
    xb = x.reshape(-1, 64).to(torch.bfloat16)
    with torch.no_grad():
        torch.library.opcheck(
            torch.ops.staticbatch_moe.fused_moe.default,
            (xb, tiled.w1.detach(), tiled.w2.detach(), *tiled.route(xb), "silu", True, None, None, 1.702, 7.0, 32),
            test_utils=("test_schema", "test_faketensor"),
        )


@pytest.mark.parametrize("activation,bias", [("silu", False), ("swigluoai", True)])
def test_tiled_and_plain_weight_layouts_agree(activation: str, bias: bool) -> None:
    """A bf16 MoE stores tiled weights by default; it holds and computes (reference path) exactly
    what a plain-layout module with the same weights does, and each loads the other's state dict."""
    bf = torch.bfloat16
    kw = dict(activation=activation, expert_bias=bias, router_bias=bias, dtype=bf)
    torch.manual_seed(3)
    tiled = moe.MoE(80, 40, 6, 2, **kw).eval()  # N, K not multiples of 64: padded tiles
    torch.manual_seed(3)
    plain = moe.MoE(80, 40, 6, 2, weight_layout="plain", **kw).eval()
    assert tiled.tiled and tiled.w1.dim() == 5 and not plain.tiled and plain.w1.shape == (6, 80, 80)
    for a, b in zip(tiled.unpacked_experts(), plain.unpacked_experts()):
        assert torch.equal(a, b)
    x = torch.randn(9, 80, dtype=bf)
    with torch.no_grad():
        want = plain(x)
        assert torch.isfinite(want).all() and want.abs().sum() > 0
        assert torch.equal(tiled(x), want)
        other = moe.MoE(80, 40, 6, 2, **kw).eval()
        other.load_state_dict(plain.state_dict())  # plain -> tiled
        assert other.w1.dim() == 5 and torch.equal(other(x), want)
        back = moe.MoE(80, 40, 6, 2, weight_layout="plain", **kw).eval()
        back.load_state_dict(tiled.state_dict())  # tiled -> plain
        assert torch.equal(back.w1, plain.w1) and torch.equal(back.w2, plain.w2)


def test_load_experts_round_trip_and_layout_errors() -> None:
    layer = moe.MoE(64, 32, 4, 2, dtype=torch.bfloat16)
    w1 = torch.randn(4, 64, 64, dtype=torch.bfloat16)
    w2 = torch.randn(4, 64, 32, dtype=torch.bfloat16)
    layer.load_experts(w1, w2)
    got1, got2 = layer.unpacked_experts()
    assert torch.equal(got1, w1) and torch.equal(got2, w2)
    w1_arg, w2_arg = layer.expert_weights()
    assert isinstance(w1_arg, moe.GateUpWeight) and isinstance(w1_arg.packed, moe.TiledWeight)
    assert isinstance(w2_arg, moe.TiledWeight) and w2_arg.shape == (4, 64, 32)
    with pytest.raises(sb.InvalidArgumentError, match=r"`w2` must be a tensor of shape \[4, 64, 32\] \(got \[4, 32, 64\]\)"):
        layer.load_experts(w1, w2.transpose(1, 2))
    with pytest.raises(sb.InvalidArgumentError, match="`weight_layout` must be one of"):
        moe.MoE(64, 32, 4, 2, weight_layout="blocked")
    with pytest.raises(sb.InvalidArgumentError, match="needs dtype torch.bfloat16 or torch.float16 .*float32"):
        moe.MoE(64, 32, 4, 2, weight_layout="tiled", dtype=torch.float32)
    assert not moe.MoE(64, 32, 4, 2).tiled  # float32: plain


def test_patched_bf16_block_stores_tiled_weights() -> None:
    block = _blocks()["mixtral"]().eval()
    _randomise(block, seed=4)
    block = block.to(torch.bfloat16)
    holder = torch.nn.Sequential(block)
    x = torch.randn(2, 7, H, dtype=torch.bfloat16)
    with torch.no_grad():
        ref = block(x).float()
        hf.patch(holder)
        got = holder[0](x).float()
    assert holder[0].moe.tiled
    assert (got - ref).norm() / ref.norm() < 2e-2


def test_demo_runs_on_the_cpu_path() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-m", "staticbatch_moe.demo", "--layers", "1", "--new-tokens", "4"],
                         cwd=root, capture_output=True, text=True, timeout=600,
                         env={**__import__("os").environ, "PYTHONPATH": str(root), "CUDA_VISIBLE_DEVICES": ""})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "need a Hopper GPU" in out.stdout and "patched 1 MoE blocks" in out.stdout


def test_combine_and_route_plan_argument_errors() -> None:
    ids = torch.tensor([[0, 1], [1, -1]], dtype=torch.int32)
    plan = moe.route_plan(ids, 2)
    y = torch.randn(4, 8)
    w = torch.rand(2, 2)
    with pytest.raises(sb.InvalidArgumentError, match="given together"):
        moe.combine(y, plan.slot_to_row, w, bias=torch.zeros(2, 8))
    with pytest.raises(sb.InvalidArgumentError, match=r"`out` must be \[2, 8\]"):
        moe.combine(y, plan.slot_to_row, w, out=torch.empty(3, 8))
    with pytest.raises(sb.InvalidArgumentError, match="at most 4"):
        moe.route_plan(ids, 2, tilings=[(64, 64, 64)] * 5)
    # The bias path adds each slot's expert bias before weighting; skipped slots add nothing.
    bias = torch.randn(2, 8)
    got = moe.combine(y, plan.slot_to_row, w, bias=bias, topk_ids=ids)
    rows = plan.slot_to_row.long()
    ref = torch.stack([sum(w[t, j] * (y[rows[t, j]] + bias[ids[t, j]]) for j in range(2) if rows[t, j] >= 0)
                       for t in range(2)])
    assert torch.allclose(got, ref, atol=1e-6)
