"""Load test of ``specread serve``: concurrent POST /v1/read on loopback, latency, errors and memory.

Starts the real server (``specread serve``, its process pool, a fresh OCR
cache so every image is really read), renders distinct label images, fires
``--requests`` requests at once with an ``httpx.AsyncClient`` for each of
``--rounds`` rounds (new images each round), polls ``/healthz`` during the
load, and prints one JSON document:

* per round: p50/p95/max latency, throughput, error count, health-check
  latency under load, the server's RSS (main process plus pool workers) after it;
* ``rss_mb``: before the load (warm, idle) and after each round, so a leak shows
  as growth from round to round rather than a plateau.

RSS is read from ``/proc`` (Linux).

Usage:
    python -m benchmarks.serve_load --requests 200 --rounds 3 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.common import free_port
from specread.synth import SPECS, LabelSpec, render_label

__all__ = ["main"]


def _rss_mb(pid: int) -> float:
    """RSS of ``pid`` and all its descendants (the OCR pool workers), in MiB, from ``/proc``."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    family = {pid}
    grew = True
    while grew:
        kids = {child for child, parent in parents.items() if parent in family} - family
        family |= kids
        grew = bool(kids)
    total_kb = 0
    for p in family:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        total_kb += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return round(total_kb / 1024, 1)


def _make_images(n: int, seed: int) -> list[tuple[bytes, str, str]]:
    """``n`` distinct PNG labels with (bytes, entity, expected prediction)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        template, entity, unit, values = rng.choice(SPECS)
        value = rng.choice(values)
        spec = LabelSpec((template.format(v=value), f"Lot {seed}-{i}", "Keep dry"), {entity: (float(value), unit)})
        buf = io.BytesIO()
        render_label(spec, seed=seed * 100_000 + i).save(buf, "PNG")
        out.append((buf.getvalue(), entity, unit))
    return out


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _round(base: str, images: list[tuple[bytes, str, str]], timeout: float) -> dict:
    limits = httpx.Limits(max_connections=len(images) + 8, max_keepalive_connections=len(images) + 8)
    async with httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as client:
        health: list[float] = []
        done = asyncio.Event()

        async def poll_health() -> None:
            while not done.is_set():
                t0 = time.perf_counter()
                resp = await client.get("/healthz")
                if resp.status_code == 200:
                    health.append(time.perf_counter() - t0)
                await asyncio.sleep(0.1)

        async def one(data: bytes, entity: str, unit: str) -> tuple[float, str | None, bool]:
            t0 = time.perf_counter()
            try:
                resp = await client.post(
                    "/v1/read", files={"image": ("label.png", data, "image/png")}, data={"entities": entity}
                )
            except httpx.HTTPError as exc:
                return time.perf_counter() - t0, type(exc).__name__, False
            elapsed = time.perf_counter() - t0
            if resp.status_code != 200:
                return elapsed, f"HTTP {resp.status_code}", False
            return elapsed, None, resp.json()["predictions"][entity]["unit"] == unit

        poller = asyncio.create_task(poll_health())
        started = time.perf_counter()
        results = await asyncio.gather(*(one(*img) for img in images))
        wall = time.perf_counter() - started
        done.set()
        await poller
    latencies = [r[0] for r in results if r[1] is None]
    errors = [r[1] for r in results if r[1] is not None]
    return {
        "requests": len(images),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "unit_correct": sum(r[2] for r in results),
        "wall_s": round(wall, 2),
        "throughput_rps": round(len(latencies) / wall, 2),
        "latency_s": {
            "p50": round(_pct(latencies, 0.5), 3),
            "p95": round(_pct(latencies, 0.95), 3),
            "max": round(max(latencies, default=float("nan")), 3),
            "mean": round(statistics.fmean(latencies), 3) if latencies else None,
        },
        "healthz_under_load_ms": {
            "n": len(health),
            "p50": round(_pct(health, 0.5) * 1000, 1),
            "p95": round(_pct(health, 0.95) * 1000, 1),
            "max": round(max(health, default=float("nan")) * 1000, 1),
        },
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="concurrent requests per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each with new images")
    parser.add_argument("--workers", type=int, default=2, help="server OCR workers")
    parser.add_argument("--timeout", type=float, default=600.0, help="client timeout per request, seconds")
    parser.add_argument("--settle", type=float, default=3.0, help="idle seconds before each RSS reading")
    args = parser.parse_args(argv)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="specread-load-") as tmp:
        cmd = [sys.executable, "-c", "from specread.cli import app; app()", "serve", "--port", str(port)]
        cmd += ["--workers", str(args.workers), "--cache-dir", tmp, "--log-level", "warning"]
        # one client (this process) sends them all: lift the per-client limits that would answer it 503
        lifted = str(args.requests + 16)
        cmd += ["--max-client-connections", lifted, "--max-client-requests", lifted, "--max-connections", lifted]
        log = open(os.path.join(tmp, "serve.log"), "w+")  # noqa: SIM115 - closed below
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        try:
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).json().get("status") == "ok":
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.perf_counter() - t0 > 180:
                    log.seek(0)
                    raise SystemExit(f"server did not start:\n{log.read()}")
                time.sleep(0.2)
            startup = time.perf_counter() - t0
            time.sleep(args.settle)
            rss = {"before": _rss_mb(proc.pid)}
            rounds = []
            for r in range(args.rounds):
                images = _make_images(args.requests, seed=1000 + r)
                result = asyncio.run(_round(base, images, args.timeout))
                time.sleep(args.settle)
                result["rss_after_mb"] = rss[f"after_round_{r + 1}"] = _rss_mb(proc.pid)
                rounds.append(result)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
    report = {
        "server": {"workers": args.workers, "startup_s": round(startup, 2), "cpus": os.cpu_count()},
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),  # other work on the machine skews the timings
        "concurrency": args.requests,
        "rounds": rounds,
        "total_errors": sum(r["errors"] for r in rounds),
        "rss_mb": rss,
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
