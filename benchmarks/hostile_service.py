"""The service half of the hostile benchmark (:mod:`benchmarks.hostile`): the corpus against ``specread serve``.

:class:`Server` runs ``specread serve`` on a free loopback port and samples its peak RSS;
:func:`run_service` sends every case (uploads, URLs, multipart bodies, raw sockets) and judges the
answers. :func:`off_loopback_target` keeps the benchmark from ever letting the service connect off
the machine.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import select
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

from benchmarks.common import (
    child_env,
    descendants,
    free_port,
    kill_group,
    mb,
    proc_field,
    specread_command,
)
from benchmarks.hostile_corpus import Case, multipart_body

__all__ = [
    "SLACK",
    "Server",
    "connections_blocked",
    "literal_targets",
    "off_loopback_target",
    "raw_case",
    "run_service",
]

SLACK = 3.0
"""Seconds a slow client's connection may stay open past the server timeout that should end it."""

_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp"}
_SERVER_OPTIONS = ("--header-timeout", "--body-timeout", "--max-connections")


# -- the server -------------------------------------------------------------------------------------------------------
class Server:
    """``specread serve`` as a subprocess on a free loopback port, with a ``VmHWM`` sampler thread."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.log_path = work / "serve.log"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.missing: list[str] = []
        self.peak_kb: dict[int, int] = {}
        self.roles: dict[int, str] = {}
        self.restarts = 0
        self._probed = False
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def _command(self) -> list[str]:
        a = self.args
        cmd = [*specread_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--workers", str(a.serve_workers)]
        cmd += ["--no-cache", "--log-level", "warning"]
        wanted = {
            "--header-timeout": a.header_timeout,
            "--body-timeout": a.body_timeout,
            "--max-connections": a.max_connections,
        }
        for option, value in wanted.items():
            if option not in self.missing:
                cmd += [option, str(value)]
        return cmd

    def _probe_options(self) -> None:
        help_text = subprocess.run(
            [*specread_command(), "serve", "--help"], capture_output=True, text=True, env=child_env(), timeout=60
        ).stdout
        self.missing = [o for o in _SERVER_OPTIONS if o not in help_text]

    def start(self) -> None:
        """Start (or restart) the server and wait for ``/healthz`` to say ok (120 s at most)."""
        if not self._probed:
            self._probe_options()
            self._probed = True
        log = open(self.log_path, "a")  # noqa: SIM115 - the server's stdout/stderr for its lifetime
        self.proc = subprocess.Popen(self._command(), stdout=log, stderr=log, env=child_env(), start_new_session=True)
        log.close()
        started = time.monotonic()
        while time.monotonic() - started < 120:
            with suppress(httpx.HTTPError, ValueError):
                if httpx.get(f"{self.base}/healthz", timeout=2).json().get("status") == "ok":
                    if not self._sampler.is_alive():
                        self._sampler.start()
                    return
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                if "No such option" in tail and len(self.missing) < len(_SERVER_OPTIONS):
                    self.missing = list(_SERVER_OPTIONS)  # could not tell which: run without all of them
                    self.proc = None
                    return self.start()
                raise RuntimeError(f"server exited with {self.proc.returncode}: {tail}")
            time.sleep(0.2)
        raise RuntimeError("server did not become healthy within 120 s")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def restart(self) -> None:
        self.stop()
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        if self.proc is None:
            return
        with suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        kill_group(self.proc.pid)
        self.proc = None

    def close(self) -> None:
        self._stop.set()
        self.stop()
        if self._sampler.is_alive():
            self._sampler.join(5)

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            proc = self.proc
            if proc is None:
                continue
            for pid in [proc.pid, *descendants(proc.pid)]:
                hwm = proc_field(pid, "VmHWM")
                if hwm:
                    self.peak_kb[pid] = max(self.peak_kb.get(pid, 0), int(hwm.split()[0]))
                if pid not in self.roles:
                    with suppress(OSError):
                        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                        self.roles[pid] = (
                            "server"
                            if pid == proc.pid
                            else "resource_tracker"
                            if b"resource_tracker" in cmdline
                            else "worker"
                        )

    def peak_rss_mb(self) -> dict:
        servers = [kb for pid, kb in self.peak_kb.items() if self.roles.get(pid) == "server"]
        workers = sorted((kb for pid, kb in self.peak_kb.items() if self.roles.get(pid) == "worker"), reverse=True)
        return {
            "server": mb(max(servers, default=0)),
            "workers": [mb(kb) for kb in workers],
            "max_worker": mb(max(workers, default=0)),
        }

    def log_errors(self) -> tuple[int, list[str]]:
        """Tracebacks in the server log and their distinct final lines (the exceptions)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        lines = text.splitlines()
        finals: list[str] = []
        for n, line in enumerate(lines):
            if line.startswith("Traceback"):  # the exception is the first unindented line after the frames
                finals.append(next((ln[:200] for ln in lines[n + 1 :] if ln and not ln[0].isspace()), "?"))
        return len(finals), sorted(set(finals))


# -- SSRF guard: never let the service connect off loopback -----------------------------------------------------------
def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def literal_targets(url: str) -> list[str] | None:
    """Where ``url`` points without any DNS lookup: [] for no connection, None when it is not a literal."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return []
    if parts.scheme.lower() not in ("http", "https") or not host:
        return []
    if host == "localhost":
        return ["127.0.0.1", "::1"]
    with suppress(ValueError):
        return [str(ipaddress.ip_address(host))]
    if re.fullmatch(r"[0-9a-fx.]+", host):
        with suppress(OSError):
            return [socket.inet_ntoa(socket.inet_aton(host))]
    return None


@contextmanager
def connections_blocked(attempts: list[str]) -> Iterator[None]:
    """Every ``socket.connect`` in this process records its address and fails instead of connecting."""
    real = socket.socket.connect

    def blocked(self: socket.socket, address: object) -> None:
        attempts.append(str(address[0] if isinstance(address, tuple) else address))
        raise ConnectionRefusedError("connection blocked by benchmarks/hostile.py")

    socket.socket.connect = blocked  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = real  # type: ignore[method-assign]


def off_loopback_target(url: str) -> str | None:
    """The non-loopback address the service would connect to for ``url``, or None when it is safe to send.

    Runs the service's own ``fetch_image`` in this process with every connection
    blocked; where that cannot run, judges by the URL's literal host. Hosts that
    are neither ``localhost`` nor an IP literal or numeric form are never sent.
    """
    literal = literal_targets(url)
    if literal is None:
        return "a host name that would need DNS"
    try:
        import anyio

        from specread.service.fetch import FetchError, FetchPolicy, fetch_image
    except ImportError:
        return next((a for a in literal if not _is_loopback(a)), None)
    attempts: list[str] = []
    with connections_blocked(attempts):
        try:
            anyio.run(fetch_image, url, FetchPolicy(timeout=5.0, connect_timeout=2.0))
        except FetchError:
            pass  # refused, or failed at the blocked connect (recorded)
        except Exception:
            attempts += literal  # the check itself failed: judge by the literal host
    return next((a for a in attempts if not _is_loopback(a)), None)


# -- service cases ----------------------------------------------------------------------------------------------------
def _form_for(case: Case) -> tuple[bytes, dict[str, str]]:
    """The request body and headers that send ``case`` to ``POST /v1/read``."""
    boundary = "hostileRunner0Boundary"
    entities = [("entities", e.encode(), None, None) for e in ("item_weight", "width")]
    if case.kind == "image":
        part = ("image", case.data, case.filename, _MIME.get(case.suffix, "application/octet-stream"))
    elif case.kind == "url":
        part = ("image_url", case.data, None, None)
    else:
        return case.data, dict(case.headers)
    body = multipart_body([*entities, ("group_id", b"1", None, None), part], boundary)
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


def _judge_http(case: Case, status: int | None, text: str) -> tuple[bool, bool]:
    """(handled, crashed) for an answer to an HTTP case."""
    if status is None:
        return False, True
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    error = isinstance(doc, dict) and isinstance(doc.get("error"), dict) and {"code", "message"} <= set(doc["error"])
    read = status == 200 and isinstance(doc, dict) and "predictions" in doc
    json_4xx = 400 <= status < 500 and error
    if status >= 500:
        return False, not (case.kind == "url" and status in (502, 504))  # a URL fetch that tried to connect
    if case.expect == "read":
        return read, False
    if case.expect in ("refuse", "error"):
        return json_4xx, False
    return read or json_4xx, False


def _http_case(client: httpx.Client, case: Case) -> dict:
    body, headers = _form_for(case)
    started = time.monotonic()
    try:
        resp = client.post("/v1/read", content=body, headers=headers)
        status, text = resp.status_code, resp.text
    except httpx.HTTPError as exc:
        status, text = None, f"no answer: {type(exc).__name__}: {exc}"[:300]
    handled, crashed = _judge_http(case, status, text)
    elapsed = time.monotonic() - started
    if handled and elapsed > case.info.get("max_seconds", float("inf")):
        handled, text = False, f"answered after {elapsed:.1f} s (limit {case.info['max_seconds']:g} s): {text}"
    code = ""
    with suppress(ValueError, AttributeError, TypeError):
        code = json.loads(text)["error"]["code"] if status and status >= 400 else ""
    return {
        "case": case.name,
        "status": status,
        "body": text[:300],
        "handled": handled,
        "crashed": crashed,
        "outcome": f"{status} {code}".strip() if status else text[:80],
        "elapsed_s": round(elapsed, 2),
    }


def _status_of(received: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.[01] (\d{3})", received)
    return int(match.group(1)) if match else None


def _pump(sockets: list[socket.socket], deadline: float, feed: Callable[[], bool] | None = None) -> dict:
    """Read from ``sockets`` until each is closed or ``deadline``; ``feed`` sends a byte a second while True."""
    received = {s: b"" for s in sockets}
    closed: dict[socket.socket, str] = {}
    next_feed = time.monotonic()
    while len(closed) < len(sockets) and (now := time.monotonic()) < deadline:
        if feed is not None and now >= next_feed:
            if not feed():
                feed = None
            next_feed += 1.0
        wait = min(deadline, next_feed if feed else deadline) - now
        ready, _, _ = select.select([s for s in sockets if s not in closed], [], [], max(0.0, wait))
        for s in ready:
            try:
                chunk = s.recv(65536)
            except OSError as exc:
                closed[s] = type(exc).__name__
                continue
            if chunk:
                received[s] += chunk
            else:
                closed[s] = "eof"
    return {"received": received, "closed": closed}


def raw_case(port: int, case: Case, limit: float) -> dict:
    """Drive one raw-socket case; the server must close (or answer) within ``limit`` + :data:`SLACK`."""
    count = int(case.info.get("connections", 1))
    started = time.monotonic()
    sockets: list[socket.socket] = []
    refused = 0
    for _ in range(count):
        try:
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            refused += 1  # the server would not even accept it: not left open
    if not sockets:
        return _raw_result(case, None, b"", {}, None, count, refused, started)
    sock = sockets[0]
    sock.settimeout(limit + SLACK)
    send_error = ""
    try:
        if case.mode in ("stall", "send"):
            try:
                sock.sendall(case.data)
            except (BrokenPipeError, ConnectionResetError) as exc:
                send_error = type(exc).__name__
            except TimeoutError:
                send_error = "send timed out"
        pending = bytearray(case.data if case.mode == "trickle" else b"")

        def feed() -> bool:
            try:
                sock.send(bytes(pending[:1]))
            except OSError:
                return False
            del pending[:1]
            return bool(pending)

        ref = time.monotonic() if case.mode == "stall" else started
        result = _pump(sockets, ref + limit + SLACK, feed if pending else None)
    finally:
        for s in sockets:
            s.close()
    closed = result["closed"]
    if send_error and send_error != "send timed out" and sock not in closed:
        closed[sock] = send_error
    return _raw_result(case, sock, result["received"][sock], closed, send_error, count, refused, started)


def _raw_result(
    case: Case,
    sock: socket.socket | None,
    received: bytes,
    closed: dict,
    send_error: str | None,
    count: int,
    refused: int,
    started: float,
) -> dict:
    """Judge a raw-socket case from what came back and which sockets the server closed."""
    status = _status_of(received)
    ended = len(closed) + refused
    left_open = count - ended
    first_closed = sock is None or sock in closed
    if case.expect == "reject":
        handled = (status is not None and 400 <= status < 500) or (status is None and first_closed)
        left_open = 0 if status is not None or first_closed else 1
    else:
        handled = left_open == 0
    first = received.split(b"\r\n", 1)[0].decode("latin-1")[:80]
    how = f"{ended}/{count} closed" if count > 1 else (closed.get(sock) or "refused" if first_closed else "still open")
    return {
        "case": case.name,
        "status": status,
        "body": f"{how} after {time.monotonic() - started:.1f} s; answer: {first or '(none)'}",
        "handled": handled,
        "crashed": status is not None and status >= 500 and status != 503,
        "left_open": left_open,
        "outcome": f"{status or '-'} {how}",
    }


def run_service(cases: list[Case], work: Path, args: argparse.Namespace, deadline: float) -> dict:
    """Every case against a live ``specread serve``."""
    server = Server(args, work)
    results: list[dict] = []
    deaths: list[dict] = []
    skipped = []
    try:
        server.start()
    except RuntimeError as exc:
        server.close()
        return {
            "cases": len(cases),
            "handled": 0,
            "crashed": 0,
            "connections_left_open": 0,
            "peak_rss_mb": server.peak_rss_mb(),
            "unhandled": [],
            "error": f"the server did not start: {exc}"[:2000],
        }
    try:
        http = [c for c in cases if not c.mode]
        raw = [c for c in cases if c.mode and c.mode != "idle"]
        idle = [c for c in cases if c.mode == "idle"]
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=server.base, timeout=args.request_timeout, limits=limits) as client:
            silent = 0
            for case in http:
                if time.monotonic() > deadline:
                    skipped.append(case.name)
                    continue
                if case.kind == "url" and (target := off_loopback_target(case.data.decode())):
                    results.append(_not_sent(case, target))
                    continue
                result = _http_case(client, case)
                results.append(result)
                silent = silent + 1 if result["status"] is None else 0
                if not server.alive():
                    deaths.append(
                        {"after_case": case.name, "returncode": server.proc.returncode if server.proc else None}
                    )
                    server.restart()
                elif silent >= 2:  # the pool hangs: start afresh so the rest of the corpus still runs
                    deaths.append({"after_case": case.name, "returncode": None, "why": "two requests unanswered"})
                    server.restart()
                    silent = 0
            timeouts = {"header": args.header_timeout, "body": args.body_timeout}
            for group in (raw, idle):
                if group and time.monotonic() < deadline:
                    with ThreadPoolExecutor(len(group)) as pool:
                        results += pool.map(lambda c: raw_case(server.port, c, timeouts[c.timeout]), group)
                else:
                    skipped += [c.name for c in group]
            healthz_ok = False
            with suppress(httpx.HTTPError, ValueError):
                healthz_ok = client.get("/healthz", timeout=5).json().get("status") == "ok"
            control = next((c for c in cases if c.expect == "read"), None)
            control_after = _http_case(client, control)["outcome"] if control else None
        time.sleep(0.5)  # one more RSS sample
    finally:
        server.close()
    tracebacks, errors = server.log_errors()
    unhandled = [{k: r[k] for k in ("case", "status", "body")} for r in results if not r["handled"]]
    return {
        "cases": len(cases),
        "handled": sum(r["handled"] for r in results),
        "crashed": sum(r["crashed"] for r in results),
        "connections_left_open": sum(r.get("left_open", 0) for r in results),
        "peak_rss_mb": server.peak_rss_mb(),
        "unhandled": unhandled,
        "server_options_missing": server.missing,
        "server_deaths": deaths,
        "server_restarts": server.restarts,
        "server_log_tracebacks": tracebacks,
        "server_log_errors": errors,
        "healthz_after": healthz_ok,
        "control_after": control_after,
        "skipped": skipped,
        "outcomes": {r["case"]: r["outcome"] for r in results},
    }


def _not_sent(case: Case, target: str) -> dict:
    why = f"not sent: the service's fetch code would connect to {target} (checked here with connections blocked)"
    return {"case": case.name, "status": None, "body": why, "handled": False, "crashed": False, "outcome": "not sent"}
