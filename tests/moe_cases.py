"""Shared helpers of the MoE tests: routings with chosen per-expert counts and error norms."""

from __future__ import annotations

import dataclasses
import itertools

import torch

from staticbatch_moe.shapes import MODEL_SHAPES

MODELS = MODEL_SHAPES


def uniform_ids(t: int, e: int, k: int, device: str = "cuda", generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform random top-k: k distinct experts per token."""
    scores = torch.rand(t, e, device=device, generator=generator)
    return scores.topk(k, dim=1).indices.to(torch.int32)


def ids_with_counts(counts: list[int], device: str = "cuda", seed: int = 0) -> torch.Tensor:
    """top-1 ids (shape [sum(counts), 1]) giving expert e exactly counts[e] rows, shuffled."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    return ids[torch.randperm(len(ids), generator=g)].to(torch.int32).reshape(-1, 1).to(device)


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    got, ref = got.double(), ref.double()
    denom = ref.norm().item()
    return float("inf") if not torch.isfinite(got).all() else (got - ref).norm().item() / max(denom, 1e-30)


def split_k_configs() -> list:
    """The split-K configurations the GPU tests force (both widths, several token blocks and splits)."""
    from staticbatch_moe._gemm_config import GemmConfig

    found = []
    for (bm, bn, sk), dtype, act, gather in itertools.product(
        ((8, 128, 4), (8, 64, 3), (16, 128, 2), (16, 64, 4), (48, 128, 3)), ("bf16", "fp16"),
        (None, "silu_and_mul"), (True, False),
    ):
        stages = 12 if bm <= 16 else 8
        found.append(GemmConfig(block_m=bm, block_n=bn, stages=stages, swap_ab=True, split_k=sk, dtype=dtype,
                                activation=act, gather=gather))
    return found


#: Per-expert row counts that give every slice-skip pattern of two-slice tiles (256-row tall
#: tiles: 1..4 live 64-row slices in the last token block; 128-row ping-pong: 1 or 2), several
#: blocks per expert, an empty expert.
TALL_COUNTS = [1, 63, 64, 65, 127, 128, 129, 191, 192, 193, 255, 256, 257, 300, 513, 0]


def tall_configs() -> list:
    """The two-slice configurations the GPU tests force (a consumer group runs two 64-row slices
    and skips a slice without rows). 256-row tall tiles: 256 x 128 in both dtypes, with and
    without silu_and_mul, every gather method (cp.async, TMA, staged); 256 x 64 / 96 / 192 in
    bf16. 128-row ping-pong tiles: the same, plus 128 x 192 in a 2-CTA cluster (staged or no
    gather)."""
    from staticbatch_moe._gemm_config import GemmConfig, _max_stages

    found = []
    for bm, (bn, dtype), act, (gather, mode) in itertools.product(
        (256, 128), ((128, "bf16"), (128, "fp16"), (64, "bf16"), (96, "bf16"), (192, "bf16")), (None, "silu_and_mul"),
        ((True, "cp_async"), (True, "tma"), (True, "staged"), (False, "cp_async")),
    ):
        pp = bm == 128
        found.append(GemmConfig(block_m=bm, block_n=bn, stages=_max_stages(bm, bn, 6, pingpong=pp), dtype=dtype,
                                activation=act, gather=gather, gather_mode=mode, pingpong=pp))
        if pp and bn == 192 and mode != "tma" and (mode == "staged" or not gather):
            found.append(dataclasses.replace(found[-1], cluster=2))
    return found


#: Per-expert row counts around the row splits of fitted swap tiles (128 / 256 tokens: a task
#: of m rows gets ceil(m / block_m) m-blocks of ceil(m / m_blocks) rows rounded up to 16, the last
#: one the rest): one row, N steps of 16 and their neighbours, 2-5 m-blocks, an empty expert.
FITTED_COUNTS = [1, 15, 16, 17, 31, 127, 128, 129, 143, 144, 145, 159, 160, 161, 176, 177, 192, 193, 255, 256, 257,
                 272, 300, 321, 511, 513, 700, 0]


def fitted_configs() -> list:
    """The fitted swap tiles the GPU tests force: 128, 160 and 256 tokens with both widths, both
    dtypes, with and without silu_and_mul, every gather method and none; the other sizes of
    FITTED_SIZES (144, 176, 192) in bf16, 128 wide, with the staged gather or none."""
    from staticbatch_moe._gemm_config import FITTED_SIZES, GemmConfig, _max_stages

    full = (128, 160, 256)
    combos = list(itertools.product(
        full, ((128, "bf16"), (128, "fp16"), (64, "bf16")), (None, "silu_and_mul"),
        ((True, "cp_async"), (True, "tma"), (True, "staged"), (False, "cp_async")),
    ))
    combos += itertools.product([bm for bm in FITTED_SIZES if bm not in full], ((128, "bf16"),),
                                (None, "silu_and_mul"), ((True, "staged"), (False, "cp_async")))
    return [GemmConfig(block_m=bm, block_n=bn, stages=_max_stages(bm, bn, 12, swap_ab=True), swap_ab=True,
                       dtype=dtype, activation=act, gather=gather, gather_mode=mode)
            for bm, (bn, dtype), act, (gather, mode) in combos]


def cluster_config(block_m: int, block_n: int, pingpong: bool, *, silu: bool, cluster: int = 2):  # type: ignore[no-untyped-def]
    """A normal-mode tile with ``cluster`` CTAs: gate/up with the staged gather (``silu``) or
    down without gather."""
    from staticbatch_moe._gemm_config import _normal_config

    cfg = _normal_config(block_m, block_n, pingpong, "silu_and_mul" if silu else None, "bf16", silu)
    if silu:
        cfg = dataclasses.replace(cfg, gather_mode="staged")
    return dataclasses.replace(cfg, cluster=cluster)


def triple_configs() -> list:
    """192-row cooperative tiles (three consumer warp groups): 192 x 192 and 192 x 128, both
    dtypes, with and without silu_and_mul (gate/up with the staged gather), with and without a
    2-CTA cluster."""
    from staticbatch_moe._gemm_config import triple_config

    return [triple_config(bn, "silu_and_mul" if silu else None, dtype, silu, c)
            for bn, dtype, silu, c in itertools.product((192, 128), ("bf16", "fp16"), (False, True), (1, 2))]


def store_warps_config(block_n: int, *, silu: bool, cluster: int = 2, store_warps: bool = True,
                       dtype: str = "bf16"):  # type: ignore[no-untyped-def]
    """A 128-row cooperative tile with or without store warps (the deepest ring either way):
    gate/up with the staged gather (``silu``) or down without gather."""
    from staticbatch_moe._gemm_config import _normal_config, with_store_warps

    cfg = _normal_config(128, block_n, False, "silu_and_mul" if silu else None, dtype, silu)
    cfg = dataclasses.replace(cfg, cluster=cluster, gather_mode="staged" if silu else "cp_async")
    return with_store_warps(cfg) if store_warps else cfg


def dynamic_config(block_n: int, *, silu: bool, cluster: int = 2, store_warps: bool = True,
                   dtype: str = "bf16"):  # type: ignore[no-untyped-def]
    """store_warps_config with dynamic tiles (the blocks take their tiles from a global counter)."""
    return dataclasses.replace(store_warps_config(block_n, silu=silu, cluster=cluster, store_warps=store_warps,
                                                  dtype=dtype), dynamic=True)


def reachable_configs() -> list:
    """Every configuration the GPU tests can reach (a superset), to compile them in parallel first."""
    import staticbatch_moe as moe

    cands = getattr(moe._gemm_config, "candidate_configs", None)
    found = set()
    shapes = {(n, k) for h, i, _, _ in MODELS.values() for n, k in ((2 * i, h), (h, i))}
    shapes |= {(320, 200), (256, 192), (192, 128), (256, 128), (5760, 2880), (2880, 1408), (2816, 2880),
               (2880, 2880), (400, 200), (200, 72), (1024, 512), (64, 64), (256, 256), (128, 64)}
    rows = (1, 2, 3, 4, 6, 8, 12, 16, 22, 32, 48, 64, 97, 128, 194, 256, 291, 388, 485, 582, 679, 776, 1000, 1024,
            1200, 2048, 2829, 4096, 6000, 8192, 16384, 65536, 320000)
    for (n, k), r, e, dtype in itertools.product(shapes, rows, (1, 8, 16, 22, 32, 60, 64, 100, 128, 156, 256, 384),
                                                 ("bf16", "fp16")):
        for act, gather in ((None, True), (None, False), ("silu_and_mul", True), ("silu_and_mul", False)):
            if act and n % 16:
                continue
            found.add(moe.choose_config(r, e, n, k, dtype, act, gather))
            found.update(c.config for c in moe.choose_tile_classes(r, e, n, k, dtype, act, gather))
    if cands is not None:
        for t, act in itertools.product((16, 256, 4096), (None, "silu_and_mul")):
            for dtype in ("bf16", "fp16"):
                found.update(cands(t, 22, 320, 200, dtype, act, True))
    # The edge-count test runs every gather configuration with the TMA gather too (192-row tiles
    # take only the staged one).
    found |= {c.with_gather_mode("tma") for c in found if c.gather and c.split_k == 1 and c.block_m != 192}
    found |= {dataclasses.replace(c, gather_mode="staged") for c in found if c.gather and c.split_k == 1 and not c.swap_ab}
    found.update(split_k_configs())
    found.update(tall_configs())
    found.update(triple_configs())
    found.update(fitted_configs())
    found.update(cluster_config(bm, bn, pp, silu=silu, cluster=c) for bm, bn, pp in
                 ((128, 256, False), (64, 256, True), (128, 128, False), (64, 128, True), (128, 192, False),
                  (64, 192, True))
                 for silu in (False, True) for c in (1, 2))
    found.update(store_warps_config(bn, silu=silu, cluster=c, store_warps=sw, dtype=dtype)
                 for bn in (256, 192, 128, 96) for silu in (False, True) for c in (1, 2) for sw in (False, True)
                 for dtype in ("bf16", "fp16"))
    found.update(dynamic_config(bn, silu=silu, cluster=c, store_warps=sw, dtype=dtype)
                 for bn in (256, 192) for silu in (False, True) for c in (1, 2) for sw in (False, True)
                 for dtype in ("bf16", "fp16"))
    found.add(moe.GemmConfig(block_m=16, block_n=128, stages=12, swap_ab=True))  # test_moe_gpu.tile_classes
    found.add(moe.GemmConfig(block_m=16, block_n=128, stages=12, swap_ab=True, activation="silu_and_mul", gather=True))
    found.update(tiled_configs())
    # The tiled-weight tests: their tiles and the heuristic's at the model shapes, with tiled_w.
    found |= {dataclasses.replace(c, tiled_w=True) for c in tiled_configs()}
    for h, i, e, k in MODELS.values():
        for t in (1, 16, 128, 1024, 4096):
            found.update(c.config for c in
                         moe.choose_tile_classes(t * k, e, 2 * i, h, "bf16", "silu_and_mul", True, num_tokens=t,
                                                 tiled_w=True)
                         + moe.choose_tile_classes(t * k, e, h, i, "bf16", None, False, num_tokens=t, tiled_w=True))
    return sorted(found, key=lambda c: c.kernel_name)


def mlp_configs() -> list:
    """The tiles of the one-launch expert MLP (grouped_mlp) that the tests compile and run: every
    swap-mode token block, both widths, both dtypes."""
    from staticbatch_moe import _gemm_config as cfgmod

    return [cfgmod._swap_config(bm, bn, "silu_and_mul", dtype, True)
            for bm, bn, dtype in itertools.product((8, 16, 32, 48, 64), (64, 128), ("bf16", "fp16"))]


def tiled_configs() -> list:
    """Tile families the tiled-weight test runs with both weight layouts (``tiled_w`` is set from
    the weight): weight boxes of 64-256 rows, 128 x 192 and 128 x 96 clusters (halves that are not
    whole 64-row blocks: each CTA copies the whole tiled weight tile), 96-row tiles (32-row
    pieces that start inside a 64-row block), swap mode with and without split-K, fitted swap tiles, store warps, dynamic tiles,
    192-row tiles; gate/up (staged or in-loop gather, SiLU) and down."""
    import staticbatch_moe as moe
    from staticbatch_moe._gemm_config import triple_config

    out = []
    for silu in (False, True):
        act = "silu_and_mul" if silu else None
        out += [cluster_config(128, 256, False, silu=silu), cluster_config(64, 192, True, silu=silu),
                cluster_config(128, 192, True, silu=silu, cluster=1), store_warps_config(256, silu=silu),
                dynamic_config(128, silu=silu), triple_config(192, act, "bf16", silu, 2),
                cluster_config(128, 96, True, silu=silu), cluster_config(64, 96, False, silu=silu, cluster=1)]
        for bm, bn, sk in ((8, 128, 1), (16, 64, 1), (8, 64, 3), (160, 128, 1)):
            out.append(moe.GemmConfig(block_m=bm, block_n=bn, stages=12 if bm <= 16 else 5, swap_ab=True, split_k=sk,
                                      activation=act, gather=silu,
                                      gather_mode="staged" if bm > 64 and silu else "cp_async"))
    return out
