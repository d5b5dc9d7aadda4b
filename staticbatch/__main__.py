"""``python -m staticbatch info`` and ``python -m staticbatch clear-cache``."""

from __future__ import annotations

import argparse
import sys


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return "not installed"


def info() -> int:
    from staticbatch import _compile, _env
    from staticbatch._version import __version__

    lines = [f"staticbatch      {__version__}"]
    try:
        import torch

        lines.append(f"torch            {torch.__version__}")
    except ImportError:
        torch = None  # type: ignore[assignment]
        lines.append("torch            not installed")
    lines.append(f"cuda-core        {_version('cuda-core')}")
    lines.append(f"cuda-bindings    {_version('cuda-bindings')}")
    try:
        major, minor = _compile.nvrtc_version()
        lines.append(f"NVRTC            {major}.{minor}")
    except Exception as exc:  # report, do not fail: info is for diagnosing exactly this
        lines.append(f"NVRTC            unavailable ({exc})")
    if torch is not None and torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            lines.append(f"GPU {i}            {p.name}, sm_{p.major}{p.minor}, {p.multi_processor_count} SMs")
    else:
        lines.append("GPU              none (kernels need a CUDA GPU; the staticbatch_moe kernels need Hopper, sm_90a)")
    lines.append(f"compile target   {_compile.default_arch()}")
    try:
        lines.append(f"headers          {_compile.include_dir()}")
    except FileNotFoundError as exc:
        lines.append(f"headers          MISSING: {exc}")
    count, size = _compile.disk_usage()
    state = "" if _env.disk_cache_enabled() else " (disabled by STATICBATCH_DISABLE_DISK_CACHE)"
    lines.append(f"cache directory  {_env.cache_dir()}{state}")
    lines.append(f"cache size       {count} entries, {size / 1e6:.2f} MB")
    print("\n".join(lines))
    return 0


def clear_cache() -> int:
    from staticbatch import _compile, _env

    removed = _compile.clear_cache()
    print(f"removed {removed} entries from {_env.cache_dir()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m staticbatch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, GPU, cache directory and size")
    sub.add_parser("clear-cache", help="remove every compiled kernel from the disk cache")
    args = parser.parse_args(argv)
    return info() if args.command == "info" else clear_cache()


if __name__ == "__main__":
    sys.exit(main())
