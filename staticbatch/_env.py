"""Every environment variable staticbatch reads, in one place (listed in docs/environment.md)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["arch_override", "cache_dir", "disk_cache_enabled", "dump_dir", "nvrtc_extra_options"]


def cache_dir() -> Path:
    """``STATICBATCH_CACHE_DIR``: where compiled cubins are kept (default ``~/.cache/staticbatch``)."""
    value = os.environ.get("STATICBATCH_CACHE_DIR")
    if value:
        return Path(value).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "staticbatch"


def disk_cache_enabled() -> bool:
    """``STATICBATCH_DISABLE_DISK_CACHE=1`` turns the disk cache off (the in-process cache stays)."""
    return os.environ.get("STATICBATCH_DISABLE_DISK_CACHE", "0").strip().lower() not in ("1", "true", "yes")


def dump_dir() -> Path:
    """``STATICBATCH_DUMP_DIR``: where generated sources of failed compiles are written
    (default ``<cache dir>/failed``)."""
    value = os.environ.get("STATICBATCH_DUMP_DIR")
    return Path(value).expanduser() if value else cache_dir() / "failed"


def arch_override() -> str | None:
    """``STATICBATCH_ARCH``: the target to compile for (e.g. ``sm_90a``) instead of the current GPU's."""
    value = os.environ.get("STATICBATCH_ARCH", "").strip()
    return value or None


def nvrtc_extra_options() -> tuple[str, ...]:
    """``STATICBATCH_NVRTC_OPTIONS``: extra NVRTC options, space separated (e.g. ``-lineinfo``)."""
    return tuple(os.environ.get("STATICBATCH_NVRTC_OPTIONS", "").split())
