"""Compile CUDA C++ to cubins with NVRTC, behind a two-level cache.

NVRTC is driven through ``cuda.bindings.nvrtc`` rather than ``cuda.core.Program``: the
latter initialises the CUDA driver, and compiling must also work on machines with no GPU
(CI compiles every shipped kernel for sm_90a). Loading and launching the cubins lives in
``staticbatch._launch``.

Cache key: SHA-256 of the generated source, of every ``<staticbatch/...>`` header it
reaches (recursively, by content, never by mtime), of the compile options, and of the
NVRTC and package versions. Level one is a dict in this process; level two is a directory
on disk (``STATICBATCH_CACHE_DIR``), written atomically (temporary file, then
``os.replace``), each entry carrying a checksum of its cubin so that a damaged entry is
detected, dropped with a :class:`~staticbatch.errors.CacheWarning`, and rebuilt.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from staticbatch import _env
from staticbatch._version import __version__
from staticbatch.errors import CacheWarning, CompileError, InvalidArgumentError

__all__ = [
    "CompiledKernel",
    "cache_stats",
    "clear_cache",
    "compile_many",
    "compile_source",
    "default_arch",
    "include_dir",
    "nvrtc_version",
]

logger = logging.getLogger("staticbatch.compile")

_MAGIC = b"SBCUBIN1"
_INCLUDE_RE = re.compile(r'^\s*#\s*include\s*[<"](staticbatch/[^>"]+)[>"]', re.MULTILINE)
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ARCH_RE = re.compile(r"^sm_[0-9]{2,3}[a-z]?$")

_memory_cache: dict[str, bytes] = {}
# (source, name, arch, options, extra options) -> CompiledKernel: a hit skips reading and
# hashing the headers, which costs far more than a launch. Headers are read once per process.
_by_source: dict[tuple, CompiledKernel] = {}
_lock = threading.Lock()
_stats = {"nvrtc_compiles": 0, "disk_hits": 0, "memory_hits": 0, "damaged_entries": 0}


@dataclass(frozen=True)
class CompiledKernel:
    """A cubin and the name of its ``extern "C"`` entry point.

    Attributes
    ----------
    name : str
        The kernel's symbol.
    cubin : bytes
        The compiled code for ``arch``.
    arch : str
        The target, e.g. ``"sm_90a"``.
    key : str
        The cache key (hex SHA-256).
    source : str
        The translation unit that was compiled.
    log : str
        NVRTC's log (ptxas' resource report when ``--ptxas-options=-v`` was given).
    """

    name: str
    cubin: bytes = field(repr=False)
    arch: str
    key: str
    source: str = field(repr=False)
    log: str = field(default="", repr=False)


def include_dir() -> Path:
    """The directory holding ``staticbatch/*.cuh``: inside an installed wheel
    (``staticbatch/_cuda_src``) or the ``cuda_src/`` of a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_cuda_src", here.parent / "cuda_src"):
        if (candidate / "staticbatch" / "common.cuh").is_file():
            return candidate
    raise FileNotFoundError(
        f"staticbatch's CUDA headers were not found next to {here} "
        "(looked for _cuda_src/staticbatch/common.cuh and ../cuda_src/staticbatch/common.cuh)"
    )


def _toolkit_include_dirs() -> list[str]:
    import cuda.pathfinder as pf

    dirs = []
    for lib in ("cudart", "cccl"):
        found = pf.find_nvidia_header_directory(lib)
        if found is None:
            raise CompileError(
                f"the CUDA headers of {lib!r} were not found; install nvidia-cuda-runtime and nvidia-cuda-cccl"
            )
        dirs.append(str(found))
    return dirs


def nvrtc_version() -> tuple[int, int]:
    """The (major, minor) version of the NVRTC library in use."""
    from cuda.bindings import nvrtc

    err, major, minor = nvrtc.nvrtcVersion()
    _check_nvrtc(err, "nvrtcVersion")
    return int(major), int(minor)


def default_arch() -> str:
    """The compile target: ``STATICBATCH_ARCH`` if set, else the current GPU's (``sm_90a`` on
    Hopper, where wgmma needs the ``a`` target), else ``sm_90a``."""
    override = _env.arch_override()
    if override:
        if not _ARCH_RE.match(override):
            raise InvalidArgumentError(f"`STATICBATCH_ARCH` must look like 'sm_90a' (got {override!r})")
        return override
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            return f"sm_{major}{minor}a" if (major, minor) == (9, 0) else f"sm_{major}{minor}"
    except Exception:  # pragma: no cover - torch without a working CUDA runtime
        pass
    return "sm_90a"


def _reached_headers(source: str, root: Path) -> dict[str, str]:
    """Every ``staticbatch/...`` header the source reaches, by relative path, with contents."""
    seen: dict[str, str] = {}
    pending = _INCLUDE_RE.findall(source)
    while pending:
        rel = pending.pop()
        if rel in seen:
            continue
        path = root / rel
        try:
            text = path.read_text()
        except FileNotFoundError:
            # NVRTC will report the missing header with context; key on its absence.
            seen[rel] = "<missing>"
            continue
        seen[rel] = text
        pending.extend(_INCLUDE_RE.findall(text))
    return seen


def _cache_key(source: str, headers: dict[str, str], options: list[str], nvrtc: tuple[int, int]) -> str:
    h = hashlib.sha256()
    for part in (
        f"format=1;package={__version__};nvrtc={nvrtc[0]}.{nvrtc[1]}",
        "\0".join(options),
        source,
    ):
        h.update(part.encode())
        h.update(b"\0\0")
    for rel in sorted(headers):
        h.update(rel.encode() + b"\0" + headers[rel].encode() + b"\0\0")
    return h.hexdigest()


def _entry_path(key: str) -> Path:
    return _env.cache_dir() / key[:2] / f"{key}.cubin"


def _read_disk(key: str) -> bytes | None:
    path = _entry_path(key)
    try:
        blob = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        logger.warning("could not read cache entry %s: %s", path, exc)
        return None
    header = len(_MAGIC) + 32
    if len(blob) > header and blob.startswith(_MAGIC):
        cubin = blob[header:]
        if hashlib.sha256(cubin).digest() == blob[len(_MAGIC) : header]:
            return cubin
    _stats["damaged_entries"] += 1
    warnings.warn(f"damaged staticbatch cache entry {path} was dropped and will be rebuilt", CacheWarning, stacklevel=4)
    try:
        path.unlink()
    except OSError:
        pass
    return None


def _write_disk(key: str, cubin: bytes) -> None:
    path = _entry_path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:16]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC + hashlib.sha256(cubin).digest() + cubin)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError as exc:
        logger.warning("could not write cache entry %s: %s", path, exc)


def _check_nvrtc(err: object, what: str) -> None:
    from cuda.bindings import nvrtc

    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise CompileError(f"{what} failed: {err}")


def _dump_source(name: str, key: str, source: str) -> Path | None:
    try:
        d = _env.dump_dir()
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{name}-{key[:12]}.cu"
        path.write_text(source)
        return path
    except OSError:  # pragma: no cover - unwritable dump dir
        return None


def _nvrtc_compile(source: str, name: str, options: list[str], key: str) -> tuple[bytes, str]:
    from cuda.bindings import nvrtc

    err, prog = nvrtc.nvrtcCreateProgram(source.encode(), f"{name}.cu".encode(), 0, [], [])
    _check_nvrtc(err, "nvrtcCreateProgram")
    try:
        opts = [o.encode() for o in options]
        (result,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        err, size = nvrtc.nvrtcGetProgramLogSize(prog)
        _check_nvrtc(err, "nvrtcGetProgramLogSize")
        buf = b" " * size
        (err,) = nvrtc.nvrtcGetProgramLog(prog, buf)
        log = buf.rstrip(b"\0").decode(errors="replace").strip()
        if result != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            path = _dump_source(name, key, source)
            raise CompileError(f"NVRTC could not compile kernel {name!r} ({result})", log=log, source_path=path)
        err, size = nvrtc.nvrtcGetCUBINSize(prog)
        _check_nvrtc(err, "nvrtcGetCUBINSize")
        cubin = b" " * size
        (err,) = nvrtc.nvrtcGetCUBIN(prog, cubin)
        _check_nvrtc(err, "nvrtcGetCUBIN")
        return cubin, log
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


def _options_and_key(source: str, arch: str, options: tuple[str, ...]) -> tuple[list[str], str]:
    """NVRTC's options and the cache key of one compile."""
    root = include_dir()
    full_options = [
        f"-arch={arch}",
        "-std=c++17",
        "-default-device",
        f"-I{root}",
        *(f"-I{d}" for d in _toolkit_include_dirs()),
        *options,
        *_env.nvrtc_extra_options(),
    ]
    # The include paths vary between machines; the headers' contents are keyed instead.
    key_options = [o for o in full_options if not o.startswith("-I")]
    return full_options, _cache_key(source, _reached_headers(source, root), key_options, nvrtc_version())


def compile_source(
    source: str,
    name: str,
    *,
    arch: str | None = None,
    options: tuple[str, ...] = (),
) -> CompiledKernel:
    """Compile a translation unit that defines ``extern "C" __global__ void <name>(...)``.

    The source may ``#include <staticbatch/...>`` headers. Compiling needs no GPU.

    Parameters
    ----------
    source : str
        CUDA C++ source.
    name : str
        The entry point's symbol (a C identifier).
    arch : str, optional
        Target such as ``"sm_90a"``; default :func:`default_arch`.
    options : tuple of str
        Extra NVRTC options (``STATICBATCH_NVRTC_OPTIONS`` is appended too).

    Returns
    -------
    CompiledKernel

    Raises
    ------
    CompileError
        NVRTC rejected the source; the error carries the log and the path of the dumped source.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidArgumentError(f"`name` must be a C identifier (got {name!r})")
    if not isinstance(source, str) or not source.strip():
        raise InvalidArgumentError("`source` must be a non-empty string of CUDA C++")
    arch = arch or default_arch()
    if not _ARCH_RE.match(arch):
        raise InvalidArgumentError(f"`arch` must look like 'sm_90a' (got {arch!r})")
    fast_key = (source, name, arch, tuple(options), _env.nvrtc_extra_options())
    hit = _by_source.get(fast_key)
    if hit is not None and hit.key in _memory_cache:
        _stats["memory_hits"] += 1
        return hit
    full_options, key = _options_and_key(source, arch, options)
    with _lock:
        cubin = _memory_cache.get(key)
        if cubin is not None:
            _stats["memory_hits"] += 1
            return CompiledKernel(name, cubin, arch, key, source)
    cubin = _read_disk(key) if _env.disk_cache_enabled() else None
    log = ""
    if cubin is not None:
        _stats["disk_hits"] += 1
        logger.debug("disk cache hit for %s (%s)", name, key[:12])
    else:
        logger.debug("compiling %s for %s (%s)", name, arch, key[:12])
        cubin, log = _nvrtc_compile(source, name, full_options, key)
        _stats["nvrtc_compiles"] += 1
        if _env.disk_cache_enabled():
            _write_disk(key, cubin)
    with _lock:
        _memory_cache[key] = cubin
    compiled = CompiledKernel(name, cubin, arch, key, source, log)
    _by_source[fast_key] = compiled
    return compiled


def _compile_worker(args: tuple[str, str, str | None, tuple[str, ...]]) -> tuple[str, bytes]:
    source, name, arch, options = args
    compiled = compile_source(source, name, arch=arch, options=options)
    return compiled.key, compiled.cubin


def compile_many(
    items: list[tuple[str, str]],
    *,
    arch: str | None = None,
    options: tuple[str, ...] = (),
    processes: int | None = None,
) -> list[CompiledKernel]:
    """Compile many ``(source, name)`` pairs, in parallel worker processes where it helps.

    Warms both cache levels, so that later :func:`compile_source` calls of the same kernels
    are hits. Call it before CUDA is initialised in this process if you can (workers are
    spawned, not forked).

    Returns
    -------
    list of CompiledKernel, in the order of ``items``.
    """
    import concurrent.futures as cf
    import multiprocessing as mp

    arch = arch or default_arch()
    todo = []
    for source, name in dict.fromkeys(items):
        _, key = _options_and_key(source, arch, options)
        if key not in _memory_cache and not (_env.disk_cache_enabled() and _entry_path(key).is_file()):
            todo.append((source, name, arch, options))
    workers = min(len(todo), processes or max(1, (os.cpu_count() or 2) - 1))
    if workers > 1:
        with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            for key, cubin in pool.map(_compile_worker, todo):
                with _lock:
                    _memory_cache[key] = cubin
    return [compile_source(source, name, arch=arch, options=options) for source, name in items]


def cache_stats() -> dict[str, int]:
    """Counters of this process: NVRTC compiles, disk hits, memory hits, damaged entries."""
    return dict(_stats)


def clear_cache(*, memory: bool = True, disk: bool = True) -> int:
    """Empty the caches; returns the number of disk entries removed."""
    removed = 0
    if memory:
        with _lock:
            _memory_cache.clear()
            _by_source.clear()
    if disk:
        root = _env.cache_dir()
        if root.is_dir():
            for path in root.glob("*/*.cubin"):
                try:
                    path.unlink()
                    removed += 1
                except OSError:
                    pass
    return removed


def disk_usage() -> tuple[int, int]:
    """(number of entries, total bytes) of the disk cache."""
    root = _env.cache_dir()
    count = size = 0
    if root.is_dir():
        for path in root.glob("*/*.cubin"):
            try:
                size += path.stat().st_size
                count += 1
            except OSError:
                pass
    return count, size
