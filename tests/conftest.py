"""Test tiers as markers, skipped with a reason where the machine cannot run them.

- (none): pure CPU.
- nvrtc: compiles kernels for sm_90a with NVRTC; needs no GPU (runs in CI).
- gpu:   needs a CUDA GPU.
- sm90:  needs a Hopper GPU (compute capability 9.0).
- slow:  takes more than a few seconds; still run by default.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "nvrtc: compiles CUDA with NVRTC (no GPU needed)",
        "gpu: needs a CUDA GPU",
        "sm90: needs a Hopper (sm_90) GPU",
        "slow: slow test",
    ):
        config.addinivalue_line("markers", line)


@functools.cache
def _nvrtc_problem() -> str | None:
    try:
        from staticbatch import _compile

        _compile.nvrtc_version()
        _compile._toolkit_include_dirs()
    except Exception as exc:  # the reason is the message
        return f"NVRTC is not usable here: {exc}"
    return None


@functools.cache
def _gpu_problem() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU on this machine (GPU tests run on the H200; see docs/performance.md)"
    return None


@functools.cache
def _sm90_problem() -> str | None:
    problem = _gpu_problem()
    if problem:
        return problem
    import torch

    cap = torch.cuda.get_device_capability()
    return None if cap == (9, 0) else f"needs a Hopper GPU (sm_90); this one is sm_{cap[0]}{cap[1]}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for marker, problem in (("nvrtc", _nvrtc_problem), ("gpu", _gpu_problem), ("sm90", _sm90_problem)):
            if marker in item.keywords:
                reason = problem()
                if reason:
                    item.add_marker(pytest.mark.skip(reason=reason))
                    break


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test session compiles into its own cache directory unless one is given."""
    if "STATICBATCH_TEST_CACHE_DIR" not in os.environ:
        os.environ["STATICBATCH_TEST_CACHE_DIR"] = str(tmp_path_factory.getbasetemp() / "sbcache")
    monkeypatch.setenv("STATICBATCH_CACHE_DIR", os.environ["STATICBATCH_TEST_CACHE_DIR"])
