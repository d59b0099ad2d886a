"""What this process may use: CPU cores (affinity and cgroup quota), memory, and the CPU's features.

specread's defaults follow the machine instead of asking the user: ``--workers``
is one worker process per core this process may really use (a container limited
to 2 CPUs on a 64-core host gets 2, not 64), fewer when memory would not hold
them; and a run logs the CPU features that decide how fast OCR is (INT8 and
bfloat16 dot products: AMX, AVX512-BF16, VNNI). Every reader takes its file paths
as arguments, so tests fake ``/proc/cpuinfo`` and the cgroup files.

Example:
    >>> from specread.hardware import default_workers
    >>> default_workers() >= 1
    True
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from specread.settings import ReaderConfig

__all__ = [
    "CPU_FEATURES",
    "WORKER_MEMORY_BYTES",
    "CpuInfo",
    "available_memory",
    "cpu_info",
    "cpu_quota",
    "default_workers",
    "run_summary",
    "usable_cpus",
]

CPU_FEATURES: tuple[str, ...] = (
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "avx512_bf16",
    "avx512_vnni",
    "avx_vnni",
    "avx512f",
    "avx2",
)
"""``/proc/cpuinfo`` flags that change OCR speed: AMX tiles compute bfloat16 and INT8 matrix products,
AVX512-BF16 bfloat16 dot products, VNNI (512- or 256-bit) INT8 dot products."""

WORKER_MEMORY_BYTES = 1024 * 1024 * 1024
"""Memory planned per worker process: one ``fast`` reader with the second pass at 1280 peaks at 0.77 GB
over real-dev (``benchmarks/throughput.py``; 0.64 GB without the second pass) and at 0.88 GB on an
88-megapixel picture (``benchmarks/hostile.py``): kernels at two detector sides, recogniser
buffers, a decoded picture."""


@dataclass(frozen=True)
class CpuInfo:
    """The CPU's model name and which of :data:`CPU_FEATURES` it has.

    Attributes:
        model: the ``model name`` line ("" where the file has none, e.g. some ARM kernels).
        features: the flags of :data:`CPU_FEATURES` present, in that order.
    """

    model: str
    features: tuple[str, ...]

    @property
    def int8_native(self) -> bool:
        """INT8 dot products in hardware (VNNI or AMX): where the ``int8`` precision pays most."""
        return bool({"amx_int8", "avx512_vnni", "avx_vnni"} & set(self.features))

    @property
    def bf16_native(self) -> bool:
        """bfloat16 in hardware (AMX or AVX512-BF16): where ``bf16`` runs natively."""
        return bool({"amx_bf16", "avx512_bf16"} & set(self.features))

    def to_dict(self) -> dict[str, object]:
        return {"model": self.model, "features": list(self.features)}


def cpu_info(path: str | Path = "/proc/cpuinfo") -> CpuInfo:
    """The CPU model and speed-relevant features, from ``path`` (the first processor listed).

    An unreadable file gives an empty :class:`CpuInfo` (non-Linux systems): features are only logged
    and reported, never required.
    """
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return CpuInfo(model="", features=())
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:  # x86, ARM
            flags = set(value.split())
        if model and flags:
            break
    return CpuInfo(model=model, features=tuple(f for f in CPU_FEATURES if f in flags))


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _own_cgroup(proc_cgroup: Path) -> str:
    """This process's cgroup v2 path (``0::/path`` in ``/proc/self/cgroup``), "" if none."""
    text = _read(proc_cgroup) or ""
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:].strip().lstrip("/")
    return ""


def cpu_quota(root: str | Path = "/sys/fs/cgroup", proc_cgroup: str | Path = "/proc/self/cgroup") -> float | None:
    """The CPUs a cgroup quota allows this process (``quota / period``), or ``None`` without a quota.

    cgroup v2: ``cpu.max`` ("max 100000" or "200000 100000") in the process's own cgroup and each
    parent up to ``root``; the smallest wins. cgroup v1: ``cpu/cpu.cfs_quota_us`` over
    ``cpu.cfs_period_us`` (-1: none).
    """
    root = Path(root)
    quotas: list[float] = []
    own = _own_cgroup(Path(proc_cgroup))
    parts = [p for p in own.split("/") if p]
    for depth in range(len(parts), -1, -1):  # the process's cgroup, then its parents
        text = _read(root.joinpath(*parts[:depth], "cpu.max"))
        if text:
            quota, _, period = text.partition(" ")
            if quota != "max" and period:
                quotas.append(int(quota) / int(period))
    for v1 in (root / "cpu", root / "cpu,cpuacct"):
        quota_us, period_us = _read(v1 / "cpu.cfs_quota_us"), _read(v1 / "cpu.cfs_period_us")
        if quota_us and period_us and int(quota_us) > 0:
            quotas.append(int(quota_us) / int(period_us))
    return min(quotas) if quotas else None


def usable_cpus(
    root: str | Path = "/sys/fs/cgroup",
    proc_cgroup: str | Path = "/proc/self/cgroup",
    affinity: set[int] | None = None,
) -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup quota (rounded up), at least 1."""
    if affinity is None:
        try:
            affinity = os.sched_getaffinity(0)
        except AttributeError:  # macOS, Windows
            affinity = set(range(os.cpu_count() or 1))
    cpus = len(affinity) or 1
    quota = cpu_quota(root, proc_cgroup)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota - 1e-9)))
    return max(1, cpus)


def available_memory(
    meminfo: str | Path = "/proc/meminfo",
    root: str | Path = "/sys/fs/cgroup",
    proc_cgroup: str | Path = "/proc/self/cgroup",
) -> int | None:
    """Bytes this process could still allocate: ``MemAvailable``, capped by a cgroup v2 ``memory.max``.

    ``None`` where neither can be read (then memory does not bound the worker count).
    """
    found: list[int] = []
    for line in (_read(Path(meminfo)) or "").splitlines():
        if line.startswith("MemAvailable:"):
            found.append(int(line.split()[1]) * 1024)
    own = Path(root).joinpath(*[p for p in _own_cgroup(Path(proc_cgroup)).split("/") if p])
    limit, current = _read(own / "memory.max"), _read(own / "memory.current")
    if limit and limit != "max" and current:
        found.append(max(0, int(limit) - int(current)))
    return min(found) if found else None


def default_workers(
    root: str | Path = "/sys/fs/cgroup",
    proc_cgroup: str | Path = "/proc/self/cgroup",
    meminfo: str | Path = "/proc/meminfo",
    affinity: set[int] | None = None,
    per_worker: int = WORKER_MEMORY_BYTES,
) -> int:
    """One worker per usable core (:func:`usable_cpus`), fewer when available memory holds fewer, at least 1."""
    workers = usable_cpus(root, proc_cgroup, affinity)
    memory = available_memory(meminfo, root, proc_cgroup)
    if memory is not None:
        workers = min(workers, memory // per_worker)
    return max(1, int(workers))


def run_summary(config: ReaderConfig, workers: int) -> str:
    """One line saying how a run will read: OCR settings, workers, device, and the CPU's speed features.

    Speed depends on the machine more than on any option (INT8 and bfloat16 run natively only with
    VNNI, AVX512-BF16 or AMX), so a run states what it found before it starts.
    """
    from specread.ocr.devices import resolve_device

    ocr = config.ocr
    cpu = cpu_info()
    try:
        device = resolve_device(ocr.device)
    except (ValueError, RuntimeError) as exc:  # reported where the engine is built; the summary stays a summary
        device = f"unavailable ({exc.__class__.__name__})"
    features = ", ".join(cpu.features) or "none detected"
    amx = "AMX" if "amx_tile" in cpu.features else "no AMX"
    who = f"{workers} worker(s)" if workers else "Ray actors"
    return (
        f"OCR {ocr.backend}/{ocr.precision}/{ocr.charset}, detector side {ocr.det_side}, "
        f"angle classifier {'on' if ocr.use_cls else 'off'}, second pass {config.retry_side or 'off'}, "
        f"device {device}, {who}; CPU {cpu.model or 'unknown'} ({amx}; {features})"
    )
