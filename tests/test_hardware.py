"""specread.hardware: usable cores from affinity and cgroup quotas, memory, CPU features (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from specread.hardware import WORKER_MEMORY_BYTES, available_memory, cpu_info, cpu_quota, default_workers, usable_cpus

GIB = 1024**3


def _make_proc(tmp_path: Path, cgroup: str = "0::/\n", mem_available_kib: int = 64 * 1024 * 1024) -> tuple[Path, Path]:
    """A fake /proc/self/cgroup and /proc/meminfo."""
    proc_cgroup = tmp_path / "proc_cgroup"
    proc_cgroup.write_text(cgroup)
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(f"MemTotal:       99999999 kB\nMemAvailable:   {mem_available_kib} kB\n")
    return proc_cgroup, meminfo


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_affinity_alone_sets_the_worker_count(tmp_path: Path) -> None:
    proc_cgroup, meminfo = _make_proc(tmp_path)

    assert default_workers(tmp_path / "cg", proc_cgroup, meminfo, affinity={0, 1, 2, 3, 4, 5}) == 6


@pytest.mark.parametrize(("cpu_max", "expected"), [("200000 100000", 2), ("150000 100000", 2), ("max 100000", 8)])
def test_cgroup_v2_quota_caps_the_cores(tmp_path: Path, cpu_max: str, expected: int) -> None:
    root = tmp_path / "cg"
    _write(root / "cpu.max", cpu_max + "\n")
    proc_cgroup, meminfo = _make_proc(tmp_path)

    assert usable_cpus(root, proc_cgroup, affinity=set(range(8))) == expected
    assert default_workers(root, proc_cgroup, meminfo, affinity=set(range(8))) == expected


def test_cgroup_v2_quota_of_the_process_own_group_and_its_parents(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _write(root / "cpu.max", "max 100000\n")
    _write(root / "kubepods" / "cpu.max", "400000 100000\n")
    _write(root / "kubepods" / "pod1" / "cpu.max", "300000 100000\n")
    proc_cgroup, _ = _make_proc(tmp_path, "0::/kubepods/pod1\n")

    assert cpu_quota(root, proc_cgroup) == 3.0
    assert usable_cpus(root, proc_cgroup, affinity=set(range(16))) == 3


def test_cgroup_v1_quota_caps_the_cores(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _write(root / "cpu" / "cpu.cfs_quota_us", "250000\n")
    _write(root / "cpu" / "cpu.cfs_period_us", "100000\n")
    proc_cgroup, _ = _make_proc(tmp_path, "4:cpu:/\n")

    assert usable_cpus(root, proc_cgroup, affinity=set(range(8))) == 3


def test_cgroup_v1_without_quota_keeps_the_affinity(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _write(root / "cpu" / "cpu.cfs_quota_us", "-1\n")
    _write(root / "cpu" / "cpu.cfs_period_us", "100000\n")
    proc_cgroup, _ = _make_proc(tmp_path)

    assert cpu_quota(root, proc_cgroup) is None
    assert usable_cpus(root, proc_cgroup, affinity={0, 1, 2}) == 3


def test_a_quota_under_one_core_still_gives_one_worker(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _write(root / "cpu.max", "50000 100000\n")
    proc_cgroup, meminfo = _make_proc(tmp_path)

    assert default_workers(root, proc_cgroup, meminfo, affinity=set(range(4))) == 1


def test_memory_bounds_the_worker_count(tmp_path: Path) -> None:
    proc_cgroup, meminfo = _make_proc(tmp_path, mem_available_kib=int(2 * WORKER_MEMORY_BYTES / 1024) + 10)

    assert default_workers(tmp_path / "cg", proc_cgroup, meminfo, affinity=set(range(8))) == 2


def test_cgroup_memory_limit_bounds_the_worker_count(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _write(root / "app" / "memory.max", str(3 * GIB) + "\n")
    _write(root / "app" / "memory.current", str(GIB) + "\n")
    proc_cgroup, meminfo = _make_proc(tmp_path, "0::/app\n")

    assert available_memory(meminfo, root, proc_cgroup) == 2 * GIB
    assert default_workers(root, proc_cgroup, meminfo, affinity=set(range(8))) == 2 * GIB // WORKER_MEMORY_BYTES


def test_no_memory_left_still_gives_one_worker(tmp_path: Path) -> None:
    proc_cgroup, meminfo = _make_proc(tmp_path, mem_available_kib=1000)

    assert default_workers(tmp_path / "cg", proc_cgroup, meminfo, affinity=set(range(8))) == 1


def test_this_machine_gives_at_least_one_worker() -> None:
    assert default_workers() >= 1


CPUINFO_EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni avx_vnni sha_ni
processor\t: 1
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni avx_vnni sha_ni
"""
CPUINFO_SAPPHIRE = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""
CPUINFO_OLD = """processor\t: 0
model name\t: Intel(R) Core(TM) i7-6700 CPU @ 3.40GHz
flags\t\t: fpu sse avx avx2
"""


@pytest.mark.parametrize(
    ("text", "model", "features", "int8", "bf16"),
    [
        (CPUINFO_EPYC, "AMD EPYC 9R14", ("avx512_bf16", "avx512_vnni", "avx_vnni", "avx512f", "avx2"), True, True),
        (
            CPUINFO_SAPPHIRE,
            "Intel(R) Xeon(R) Platinum 8488C",
            ("amx_tile", "amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx512f", "avx2"),
            True,
            True,
        ),
        (CPUINFO_OLD, "Intel(R) Core(TM) i7-6700 CPU @ 3.40GHz", ("avx2",), False, False),
    ],
    ids=["epyc-no-amx", "sapphire-rapids-amx", "skylake"],
)
def test_cpu_features_are_parsed(
    tmp_path: Path, text: str, model: str, features: tuple[str, ...], int8: bool, bf16: bool
) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(text)

    info = cpu_info(path)

    assert info.model == model
    assert info.features == features
    assert info.int8_native is int8 and info.bf16_native is bf16
    assert info.to_dict() == {"model": model, "features": list(features)}


def test_unreadable_cpuinfo_gives_an_empty_description(tmp_path: Path) -> None:
    info = cpu_info(tmp_path / "missing")

    assert info.model == "" and info.features == ()


def test_cli_commands_default_to_the_usable_cores() -> None:
    import inspect

    from specread.cli.options import DEFAULT_WORKERS
    from specread.cli.predict import predict
    from specread.cli.train import train

    assert default_workers() == DEFAULT_WORKERS
    for command in (predict, train):
        assert inspect.signature(command).parameters["workers"].default == DEFAULT_WORKERS


def test_a_run_states_its_settings_and_the_cpu_features(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from specread import hardware
    from specread.hardware import run_summary
    from specread.ocr import devices
    from specread.settings import ReaderConfig, preset

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO_SAPPHIRE)
    real = hardware.cpu_info
    monkeypatch.setattr(hardware, "cpu_info", lambda: real(cpuinfo))
    monkeypatch.setattr(devices, "available_providers", lambda: ["CPUExecutionProvider"])

    line = run_summary(ReaderConfig(ocr=preset("int8"), retry_side=1600), workers=3)

    assert "openvino/int8/latin" in line and "second pass 1600" in line and "3 worker(s)" in line
    assert "device cpu" in line and "Intel(R) Xeon(R) Platinum 8488C (AMX; amx_tile" in line


def test_predict_prints_its_settings_before_reading(cli, tmp_dataset, fake_rapidocr, tmp_path: Path) -> None:
    result = cli("predict", tmp_dataset.input_csv, "--images", tmp_dataset.images, "-o", tmp_path / "out.csv")

    assert result.exit_code == 0, result.output
    first = next(line for line in result.output.splitlines() if line.strip())
    assert first.startswith("settings: OCR openvino/bf16/latin") and "1 worker(s)" in first and "CPU " in first
