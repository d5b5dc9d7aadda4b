"""Errors raised by staticbatch.

One tree; each error also subclasses the builtin it means, so ``except ValueError`` keeps
working for callers that do not know this package::

    StaticBatchError (Exception)
    ├── InvalidArgumentError (ValueError)     a bad argument: names it, what it must be, what it got
    ├── PlanOverflowError (OverflowError)     a plan's tile count does not fit in int32
    ├── CompileError (RuntimeError)           NVRTC rejected a kernel; carries the log and source path
    ├── UnsupportedDeviceError (RuntimeError) no GPU, or a GPU the kernels are not built for
    └── LaunchError (RuntimeError)            a CUDA driver call failed while loading or launching

    CacheWarning (UserWarning)                a damaged disk-cache entry was dropped and rebuilt
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CacheWarning",
    "CompileError",
    "InvalidArgumentError",
    "LaunchError",
    "PlanOverflowError",
    "StaticBatchError",
    "UnsupportedDeviceError",
]


class StaticBatchError(Exception):
    """Base class of every error raised by staticbatch."""


class InvalidArgumentError(StaticBatchError, ValueError):
    """An argument has the wrong type, dtype, device, shape or value."""


class PlanOverflowError(StaticBatchError, OverflowError):
    """The total tile count of a plan does not fit in a signed 32-bit integer."""


class CompileError(StaticBatchError, RuntimeError):
    """NVRTC failed to compile a generated kernel.

    Attributes
    ----------
    log : str
        The NVRTC log.
    source_path : pathlib.Path or None
        Where the generated translation unit was written for inspection.
    """

    def __init__(self, message: str, *, log: str = "", source_path: Path | None = None) -> None:
        details = message
        if source_path is not None:
            details += f"\n  generated source: {source_path}"
        if log:
            details += "\n  NVRTC log:\n" + "\n".join("    " + line for line in log.rstrip().splitlines())
        super().__init__(details)
        self.log = log
        self.source_path = source_path


class UnsupportedDeviceError(StaticBatchError, RuntimeError):
    """No CUDA device is available, or the device is not one the kernels are built for."""


class LaunchError(StaticBatchError, RuntimeError):
    """A CUDA driver call failed while loading or launching a kernel."""


class CacheWarning(UserWarning):
    """A damaged entry of the disk cache was dropped and will be rebuilt."""
