"""Compiling with NVRTC for sm_90a (no GPU needed) and the two-level cache."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from kinds import byte_copy_kind, probe_kind, ragged_scale_kind

import staticbatch as sb
from staticbatch import _compile, plans

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.nvrtc

SHIPPED_TILINGS = [(64,), (128,), (1024,), (128, 256), (64, 128), (16, 16, 16)]


@pytest.mark.parametrize("tiling", SHIPPED_TILINGS)
@pytest.mark.parametrize("dtype", ["torch.int32", "torch.int64"])
def test_device_plan_kernels_compile(tiling: tuple[int, ...], dtype: str) -> None:
    k = plans.device_plan_kernel(sb.Tiling(tiling), dtype)
    assert k.arch == "sm_90a"
    assert k.cubin[:4] == b"\x7fELF"


@pytest.mark.parametrize("mapper", ["binary_search", "warp_search", sb.Mapper("warp_scan", 1), sb.Mapper("warp_scan", 8)])
@pytest.mark.parametrize("make", [lambda: probe_kind((4,)), lambda: probe_kind((8, 16, 2)), ragged_scale_kind, byte_copy_kind])
def test_task_kinds_compile(make, mapper) -> None:  # type: ignore[no-untyped-def]
    k = sb.compile_kernel(make(), mapper, arch="sm_90a")
    assert k.compiled.cubin[:4] == b"\x7fELF"
    assert k.name.startswith("sb_")


def test_example_kind_compiles() -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    import custom_task

    for mapper in ("binary_search", "warp_search", "warp_scan"):
        k = sb.compile_kernel(custom_task.segment_sum_kind(), mapper, arch="sm_90a")
        assert k.compiled.cubin[:4] == b"\x7fELF"


def test_compile_error_carries_log_and_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATICBATCH_DUMP_DIR", str(tmp_path))
    kind = sb.TaskKind("broken", 32, ["float* y"], "__device__ void tile(const Params& p, const Tile& t) { p.z = 1; }")
    with pytest.raises(sb.CompileError) as info:
        sb.compile_kernel(kind)
    err = info.value
    assert isinstance(err, RuntimeError)
    assert "has no member" in err.log and '"z"' in err.log
    assert err.source_path is not None and err.source_path.parent == tmp_path
    assert kind.kernel_name(sb.Mapper()) in err.source_path.read_text()
    assert str(err.source_path) in str(err)


def _fresh_source(tag: str) -> str:
    return textwrap.dedent(
        f"""
        #include <staticbatch/kernel.cuh>
        extern "C" __global__ void sb_cache_probe_{tag}(int* x) {{ x[threadIdx.x] = {len(tag)}; }}
        """
    )


def test_memory_then_disk_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATICBATCH_CACHE_DIR", str(tmp_path))
    src = _fresh_source("mem")
    before = sb.cache_stats()
    a = sb.compile_source(src, "sb_cache_probe_mem")
    b = sb.compile_source(src, "sb_cache_probe_mem")
    after = sb.cache_stats()
    assert after["nvrtc_compiles"] == before["nvrtc_compiles"] + 1
    assert after["memory_hits"] == before["memory_hits"] + 1
    assert a.cubin == b.cubin and a.key == b.key
    assert list(tmp_path.glob("*/*.cubin"))


_CHILD = """
import json, sys
import staticbatch as sb
src = sys.stdin.read()
k = sb.compile_source(src, "sb_cache_probe_proc")
print(json.dumps({"stats": sb.cache_stats(), "key": k.key, "size": len(k.cubin)}))
"""


def _child(src: str, cache: Path) -> dict:
    import json

    env = dict(os.environ, STATICBATCH_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], input=src, capture_output=True, text=True, env=env, check=True, timeout=300
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_hits_disk_cache(tmp_path: Path) -> None:
    src = _fresh_source("proc")
    first = _child(src, tmp_path)
    second = _child(src, tmp_path)
    assert first["stats"]["nvrtc_compiles"] == 1 and first["stats"]["disk_hits"] == 0
    assert second["stats"]["nvrtc_compiles"] == 0 and second["stats"]["disk_hits"] == 1
    assert first["key"] == second["key"] and first["size"] == second["size"]


def test_two_processes_compiling_at_once(tmp_path: Path) -> None:
    import json

    src = _fresh_source("race")
    env = dict(os.environ, STATICBATCH_CACHE_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(src, timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    keys = {json.loads(o[0].strip().splitlines()[-1])["key"] for o in outs}
    assert len(keys) == 1
    entries = list(tmp_path.glob("*/*.cubin"))
    assert len(entries) == 1 and not list(tmp_path.glob("*/*.tmp"))
    # And the entry both wrote is valid.
    assert _child(src, tmp_path)["stats"]["disk_hits"] == 1


def test_damaged_entry_is_rebuilt_with_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATICBATCH_CACHE_DIR", str(tmp_path))
    src = _fresh_source("damaged")
    good = sb.compile_source(src, "sb_cache_probe_damaged")
    (entry,) = tmp_path.glob("*/*.cubin")
    blob = bytearray(entry.read_bytes())
    blob[-10] ^= 0xFF
    entry.write_bytes(bytes(blob))
    _compile.clear_cache(disk=False)
    before = sb.cache_stats()
    with pytest.warns(sb.CacheWarning, match="damaged"):
        again = sb.compile_source(src, "sb_cache_probe_damaged")
    assert again.cubin == good.cubin
    assert sb.cache_stats()["nvrtc_compiles"] == before["nvrtc_compiles"] + 1
    # The rebuilt entry is whole again.
    _compile.clear_cache(disk=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb.compile_source(src, "sb_cache_probe_damaged")


def test_key_covers_every_reached_header(tmp_path: Path) -> None:
    root = tmp_path / "inc"
    (root / "staticbatch").mkdir(parents=True)
    (root / "staticbatch" / "a.cuh").write_text("#include <staticbatch/b.cuh>\n")
    (root / "staticbatch" / "b.cuh").write_text("#define B 1\n")
    src = "#include <staticbatch/a.cuh>\n"
    first = _compile._cache_key(src, _compile._reached_headers(src, root), ["-arch=sm_90a"], (13, 0))
    (root / "staticbatch" / "b.cuh").write_text("#define B 2\n")
    second = _compile._cache_key(src, _compile._reached_headers(src, root), ["-arch=sm_90a"], (13, 0))
    assert first != second
    third = _compile._cache_key(src, _compile._reached_headers(src, root), ["-arch=sm_90"], (13, 0))
    fourth = _compile._cache_key(src, _compile._reached_headers(src, root), ["-arch=sm_90"], (13, 1))
    assert len({second, third, fourth}) == 3


def test_real_header_set_is_followed() -> None:
    src = '#include <staticbatch/kernel.cuh>\n'
    reached = _compile._reached_headers(src, sb.include_dir())
    assert {"staticbatch/kernel.cuh", "staticbatch/mapper.cuh", "staticbatch/common.cuh"} <= set(reached)


def test_disk_cache_can_be_disabled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATICBATCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("STATICBATCH_DISABLE_DISK_CACHE", "1")
    sb.compile_source(_fresh_source("nodisk"), "sb_cache_probe_nodisk")
    assert not list(tmp_path.glob("*/*.cubin"))


def test_bad_compile_arguments() -> None:
    with pytest.raises(sb.InvalidArgumentError, match="`name` must be a C identifier"):
        sb.compile_source("x", "not a name")
    with pytest.raises(sb.InvalidArgumentError, match="`arch`"):
        sb.compile_source(_fresh_source("arch"), "sb_cache_probe_arch", arch="hopper")
    with pytest.raises(sb.InvalidArgumentError, match="`source`"):
        sb.compile_source("  ", "sb_x")


def test_compile_many_in_parallel_fills_the_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATICBATCH_CACHE_DIR", str(tmp_path))
    items = [(_fresh_source(f"many{i}"), f"sb_cache_probe_many{i}") for i in range(3)]
    before = sb.cache_stats()
    out = sb.compile_many(items, processes=2)
    assert [k.name for k in out] == [n for _, n in items]
    assert len(list(tmp_path.glob("*/*.cubin"))) == 3
    after = sb.cache_stats()
    # The workers compiled; this process only hit its memory cache.
    assert after["nvrtc_compiles"] == before["nvrtc_compiles"]
    assert after["memory_hits"] == before["memory_hits"] + 3


@pytest.mark.slow
def test_installed_wheel_ships_and_finds_the_headers(tmp_path: Path) -> None:
    """The headers travel as package data: an installed wheel (no checkout beside it) finds them."""
    wheel_dir, site = tmp_path / "wheel", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    (wheel,) = wheel_dir.glob("staticbatch-*.whl")
    import zipfile

    zipfile.ZipFile(wheel).extractall(site)
    assert (site / "staticbatch" / "_cuda_src" / "staticbatch" / "moe" / "grouped_gemm.cuh").is_file()
    code = "import staticbatch, sys; d = staticbatch.include_dir(); print(d); sys.exit(0 if str(d).startswith(sys.argv[1]) else 1)"
    out = subprocess.run([sys.executable, "-c", code, str(site)], cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(site)),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_repeat_compiles_skip_the_headers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A launch-path lookup must not reread and rehash headers (it would cost more than the launch)."""
    monkeypatch.setenv("STATICBATCH_CACHE_DIR", str(tmp_path))
    src = _fresh_source("memo")
    first = sb.compile_source(src, "sb_cache_probe_memo")

    def boom(*args: object) -> None:
        raise AssertionError("headers were read again")

    monkeypatch.setattr(_compile, "_reached_headers", boom)
    again = sb.compile_source(src, "sb_cache_probe_memo")
    assert again is first
