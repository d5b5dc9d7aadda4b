"""``python -m staticbatch_moe.demo``: a small MoE transformer, patched, checked and timed.

Builds a Qwen3-MoE-style causal LM from a config with random weights (no downloads), runs it,
replaces its sparse MoE blocks with staticbatch's (``staticbatch_moe.hf.patch``), checks that
the logits agree, and prints generation speed before and after. On a Hopper GPU the patched
blocks run the statically batched kernels in bf16; anywhere else they run the torch reference
path in float32, and the demo says so.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from typing import Any


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m staticbatch_moe.demo", description=__doc__)
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--new-tokens", type=int, default=32)
    args = ap.parse_args(argv)
    try:
        import torch
        from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM
    except ImportError as exc:
        print(f"the demo needs torch and transformers >= 5 (pip install -e .[hf]): {exc}")
        return 1
    from staticbatch_moe import hf

    hopper = torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if hopper else torch.float32
    size: dict[str, Any]
    if hopper:
        size = {"hidden_size": 2048, "moe_intermediate_size": 768, "num_experts": 64, "num_experts_per_tok": 8,
                "num_hidden_layers": args.layers or 8, "num_attention_heads": 16, "num_key_value_heads": 4}
        print(f"GPU: {torch.cuda.get_device_name()} (Hopper): the patched blocks run staticbatch's kernels in bf16.")
    else:
        size = {"hidden_size": 256, "moe_intermediate_size": 128, "num_experts": 16, "num_experts_per_tok": 4,
                "num_hidden_layers": args.layers or 2, "num_attention_heads": 4, "num_key_value_heads": 2}
        where = "no CUDA GPU here" if device == "cpu" else f"{torch.cuda.get_device_name()} is not Hopper"
        print(f"{where}: the staticbatch kernels need a Hopper GPU (sm_90a), so the patched blocks run the "
              "torch reference path (float32). The numbers below check correctness, not speed.")
    config = Qwen3MoeConfig(vocab_size=4096, intermediate_size=4 * size["hidden_size"], max_position_embeddings=512,
                            norm_topk_prob=True, **size)
    torch.manual_seed(0)
    model: Any = Qwen3MoeForCausalLM(config)
    model = model.to(device=device, dtype=dtype).eval()
    with torch.no_grad():
        for p in model.parameters():  # the experts start uninitialised (torch.empty): give them values
            if p.dim() == 3:
                p.normal_(0.0, 0.02)
    prompt = torch.randint(0, config.vocab_size, (4, 16), device=device)

    def generate() -> tuple[float, torch.Tensor]:
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model.generate(prompt, max_new_tokens=args.new_tokens, do_sample=False, min_new_tokens=args.new_tokens)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0, out

    with torch.no_grad():
        # The reference is the unpatched model in float32: in bf16 the original blocks and ours
        # round differently (theirs accumulate the combine in bf16, ours in float32), so the
        # patched model must be as close to float32 as the original bf16 model is, not equal to it.
        exact = copy.deepcopy(model).float()
        ref_logits = exact(prompt).logits.float()
        del exact
        base_logits = model(prompt).logits.float()
        generate()  # warm-up
        before, _ = generate()
        replaced = hf.patch(model)
        logits = model(prompt).logits.float()
        generate()  # warm-up (compiles the kernels on first use)
        after, _ = generate()
    rel = lambda a: ((a - ref_logits).norm() / ref_logits.norm()).item()  # noqa: E731
    err, base_err = rel(logits), rel(base_logits)
    tol = max(1e-2, 1.5 * base_err) if dtype == torch.bfloat16 else 1e-5
    tokens = prompt.shape[0] * args.new_tokens
    print(f"model: {config.num_hidden_layers} layers, {config.num_experts} experts (top-{config.num_experts_per_tok}), "
          f"hidden {config.hidden_size}, {dtype}, {device}")
    print(f"patched {len(replaced)} MoE blocks; logits relative error vs the original model in float32: "
          f"{err:.2e} patched, {base_err:.2e} original in {dtype} (tolerance {tol:.2g})")
    print(f"generation of {tokens} tokens: {tokens / before:.1f} tok/s before, {tokens / after:.1f} tok/s after "
          f"({before / after:.2f}x)")
    if not err <= tol:
        print("FAILED: the patched model disagrees with the original")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
