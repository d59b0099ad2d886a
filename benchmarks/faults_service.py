"""Fault scenarios of the service (issue 18, point 7): starvation, abandoned requests, upload memory, review names.

Each scenario runs the real ``specread serve`` (or ``specread review``) as a subprocess on a
loopback port (:class:`hostile.Server`), with a timeout, and kills its process group at the end.
Clients bind to distinct loopback addresses (127.0.0.0/8 is all ``lo`` on Linux), so "another
client" is another peer address to the server, as it would be on a network:

* ``starvation``: one client (127.0.0.1) holds 100 sockets: idle before its headers, sending
  its headers slowly, or with half-sent bodies. Another client's ``/healthz`` and a read must be
  answered, and the read right.
* ``abandoned``: one worker is busy; N clients queue a read and then disconnect (close,
  half-close, or leave mid-upload). A fresh read must wait for about two reads, not N.
* ``upload_memory``: N concurrent 20 MB uploads (100; ``--quick`` 20), from N addresses or from
  one. The server's main process peak RSS (``VmHWM``) must stay under 1.5 GB, and every client
  must get an answer (200, or a JSON 503), never a reset connection.
* ``review_names``: odd image names on the review page (1,024 characters, a link loop, a NUL,
  ``..``, a very deep path, a 300-character part): a JSON 4xx, never 500, and the server lives on.

Run alone: ``python -m benchmarks.faults_service [--quick]`` prints the list as JSON.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import httpx
from PIL import Image

from benchmarks.common import child_env, fault_row, faults_main, free_port, kill_group, mb, proc_field, specread_command
from benchmarks.hostile_corpus import label_image, multipart_body, raw_request
from benchmarks.hostile_service import Server

__all__ = ["main", "run_faults"]

ENTITY = "item_weight"
FLOOD = 100
"""Sockets the flooding client holds."""
RSS_LIMIT_MB = 1500.0
UPLOAD_BYTES = 20_000_000
_BOUNDARY = "specread-faults"


def _result(family: str, case: str, handled: bool, detail: str, **fields: object) -> dict:
    return fault_row(family, case, handled, detail[:300], **fields)


def _label_png(tiles: int = 1) -> bytes:
    """A label image; with ``tiles``, that many copies on one page (more lines: a slower read)."""
    tile = label_image()
    page = Image.new("RGB", (tile.width * 2, tile.height * ((tiles + 1) // 2)), "white")
    for n in range(tiles):
        page.paste(tile, ((n % 2) * tile.width, (n // 2) * tile.height))
    buf = io.BytesIO()
    page.save(buf, "PNG")
    return buf.getvalue()


def _form(image: bytes) -> bytes:
    parts = [("entities", ENTITY.encode(), None, None), ("image", image, "a.png", "image/png")]
    return multipart_body(parts, _BOUNDARY)


def _post_head(size: int) -> bytes:
    """A read request's headers, for a body of ``size`` bytes sent after them."""
    headers = [("Content-Type", f"multipart/form-data; boundary={_BOUNDARY}"), ("Content-Length", str(size))]
    return raw_request("POST", "/v1/read", [*headers, ("Connection", "close")])


def _connect(port: int, source: str, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))


def _answer(sock: socket.socket, within: float) -> tuple[int | None, dict | None, str]:
    """Read a whole (``Connection: close``) answer: ``(status, json body, how it ended)``."""
    raw, how = b"", "eof"
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(1 << 16)
        except ConnectionResetError:
            how = "reset"
            break
        except TimeoutError:
            how = "timeout"
            continue
        if not chunk:
            break
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None, None, how
    try:
        return status, json.loads(body), how
    except ValueError:
        return status, None, how


def _read(port: int, source: str, image: bytes, within: float) -> tuple[int | None, str | None, float]:
    """One read from ``source``: ``(status, prediction, seconds)``."""
    started = time.monotonic()
    body = _form(image)
    try:
        with _connect(port, source) as sock:
            sock.sendall(_post_head(len(body)) + body)
            status, doc, _ = _answer(sock, within)
    except OSError:
        return None, None, time.monotonic() - started
    prediction = (doc or {}).get("predictions", {}).get(ENTITY, {}).get("prediction") if status == 200 else None
    return status, prediction, time.monotonic() - started


def _healthz(port: int, source: str, within: float = 5.0) -> tuple[int | None, float]:
    started = time.monotonic()
    transport = httpx.HTTPTransport(local_address=source)
    try:
        with httpx.Client(transport=transport, timeout=within) as client:
            status = client.get(f"http://127.0.0.1:{port}/healthz").status_code
    except httpx.HTTPError:
        status = None
    return status, time.monotonic() - started


def _alive(pid: int) -> bool:
    state = proc_field(pid, "State")
    return bool(state) and not state.startswith("Z")


class _Serve(Server):
    """``specread serve`` with this module's options (one worker, long header and body timeouts)."""

    def __init__(self, work: Path, extra: list[str]) -> None:
        options = argparse.Namespace(serve_workers=1, header_timeout=15.0, body_timeout=30.0, max_connections=200)
        super().__init__(options, work)
        self.extra = extra

    def _command(self) -> list[str]:
        return [*super()._command(), *self.extra]

    ORPHAN_GRACE_S = 3.0
    """How long the server's workers have to die after it exits before they count as orphans."""

    def close(self) -> None:
        """Stop the server, give its workers :attr:`ORPHAN_GRACE_S` to die with it, note the survivors, kill the rest.

        The survivors are counted *before* the process group is killed: counted after, a worker
        just sent SIGKILL still shows as alive for a moment (a false orphan), and a real orphan
        would have been killed with the group (a missed one).
        """
        self._stop.set()
        if self._sampler.is_alive():
            self._sampler.join(5)  # the peaks are final, and nobody adds to them while they are read
        proc, self._left = self.proc, []
        if proc is not None:
            with suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            workers = [pid for pid in self.peak_kb if pid != proc.pid]
            deadline = time.monotonic() + self.ORPHAN_GRACE_S
            while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
                time.sleep(0.05)
            self._left = [pid for pid in workers if _alive(pid)]
            kill_group(proc.pid)
            self.proc = None

    def orphans(self) -> int:
        """Processes of this server still alive :attr:`ORPHAN_GRACE_S` after it exited (then killed)."""
        left = getattr(self, "_left", [])
        for pid in left:
            with suppress(ProcessLookupError):
                os.kill(pid, 9)
        return len(left)


@contextmanager
def _server(work: Path, extra: list[str] | None = None) -> Iterator[_Serve]:
    work.mkdir(parents=True, exist_ok=True)
    server = _Serve(work, extra or [])
    try:
        server.start()
        yield server
    finally:
        server.close()


# -- starvation ----------------------------------------------------------------------------------------------------
def _flood(port: int, variant: str, stack: ExitStack) -> Callable[[], None]:
    """Open :data:`FLOOD` sockets from 127.0.0.1 in the way ``variant`` says; returns what keeps them going."""
    socks = [stack.enter_context(_connect(port, "127.0.0.1")) for _ in range(FLOOD)]
    if variant == "slow_headers":
        for s in socks:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: faults\r\nX-Slow: ")
    elif variant == "half_sent_bodies":
        head = _post_head(1_000_000)
        for s in socks:
            with suppress(OSError):
                s.sendall(head + b"\0" * 1000)

    def drip() -> None:
        if variant == "slow_headers":
            for s in socks:
                with suppress(OSError):
                    s.send(b"a")

    return drip


def _starvation(server: _Serve, image: bytes, baseline: str | None, variant: str, timeout: float) -> dict:
    with ExitStack() as stack:
        drip = _flood(server.port, variant, stack)
        time.sleep(0.5)
        drip()
        health, health_s = _healthz(server.port, "127.0.0.2")
        drip()
        status, prediction, read_s = _read(server.port, "127.0.0.3", image, timeout)
        own, _ = _healthz(server.port, "127.0.0.1")
    wrong = int(status == 200 and prediction != baseline)
    handled = health == 200 and status == 200 and not wrong
    detail = (
        f"{FLOOD} sockets from one client; other client's healthz {health} in {health_s * 1000:.0f} ms, "
        f"read {status} in {read_s:.2f} s ({prediction!r}); the flooder's own healthz {own}"
    )
    return _result("starvation", variant, handled, detail, wrong_answers=wrong, healthz_ms=round(health_s * 1000, 1))


# -- abandoned requests --------------------------------------------------------------------------------------------
def _leave(port: int, n: int, image: bytes, variant: str) -> None:
    """``n`` clients (127.0.1.x) send a read and go away, as ``variant`` says, once it is queued."""
    body = _form(image)
    socks = [_connect(port, f"127.0.1.{i + 1}") for i in range(n)]
    for s in socks:
        s.sendall(_post_head(len(body)) + (body[: len(body) // 2] if variant == "leave_mid_upload" else body))
    time.sleep(0.5)  # queued behind the busy worker
    for s in socks:
        if variant == "half_close_while_queued":
            with suppress(OSError):
                s.shutdown(socket.SHUT_WR)
        s.close()


def _abandoned(server: _Serve, image: bytes, baseline: str | None, variant: str, n: int) -> dict:
    one_s = _read(server.port, "127.0.0.5", image, 120)[2]  # now, under the machine's current load
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(_read, server.port, "127.0.0.4", image, 120)
        time.sleep(0.2)
        _leave(server.port, n, image, variant)
        status, prediction, fresh_s = _read(server.port, "127.0.0.3", image, 120)
        first = busy.result()
    wrong = int(status == 200 and prediction != baseline) + int(first[0] == 200 and first[1] != baseline)
    bound = (n / 2 + 2) * one_s + 0.5  # the busy read, the fresh one, slack: far under the n reads left behind
    handled = status == 200 and first[0] == 200 and fresh_s <= bound and not wrong
    detail = (
        f"{n} clients left while queued; a fresh read took {fresh_s:.2f} s (one read {one_s:.2f} s, "
        f"bound {bound:.2f} s; all {n} read would be about {n * one_s:.1f} s)"
    )
    return _result("abandoned", variant, handled, detail, wrong_answers=wrong, fresh_latency_s=round(fresh_s, 2))


# -- upload memory -------------------------------------------------------------------------------------------------
def _upload(port: int, source: str, payload: bytes, within: float) -> str:
    """One 20 MB upload: ``"200"``, ``"503 json"``, or what went wrong."""
    try:
        with _connect(port, source, timeout=within) as sock:
            with suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(payload)
            status, doc, how = _answer(sock, within)
    except OSError as exc:
        return type(exc).__name__
    if status == 200 or (status == 503 and doc and "error" in doc):
        return str(status) + ("" if status == 200 else " json")
    return f"{status} {how}"


def _uploads(work: Path, n: int, one_client: bool, timeout: float) -> dict:
    body = _form(_label_png() + b"\0" * UPLOAD_BYTES)
    payload = _post_head(len(body)) + body
    del body
    with _server(work, ["--max-upload-mb", "20"]) as server:
        sources = ["127.0.0.1" if one_client else f"127.0.{2 + i // 250}.{1 + i % 250}" for i in range(n)]
        with ThreadPoolExecutor(n) as pool:
            outcomes = list(pool.map(lambda s: _upload(server.port, s, payload, timeout), sources))
        time.sleep(0.5)
        pid = server.proc.pid if server.proc else 0
        hwm = proc_field(pid, "VmHWM")
        peak = mb(int(hwm.split()[0])) if hwm else None
        workers = server.peak_rss_mb()["max_worker"]
        health, _ = _healthz(server.port, "127.0.0.2")
    orphans = server.orphans()
    counts = {k: outcomes.count(k) for k in sorted(set(outcomes))}
    answered = counts.get("200", 0) + counts.get("503 json", 0)
    handled = answered == n and peak is not None and peak < RSS_LIMIT_MB and health == 200
    case = f"{n}x20MB_" + ("one_client" if one_client else "many_clients")
    detail = f"outcomes {counts}; main process peak {peak} MB (limit {RSS_LIMIT_MB:.0f}), worker {workers} MB"
    return _result("upload_memory", case, handled and not orphans, detail, orphans=orphans, peak_rss_mb=peak)


# -- review names --------------------------------------------------------------------------------------------------
ODD_NAMES = {
    "1024_chars": "a" * 1024,
    "part_300_chars": "d/" + "a" * 300 + ".png",
    "symlink_loop": "loop1",
    "through_a_loop": "loop1/x.png",
    "self_link": "self.png",
    "nul_byte": "label.png\x00.txt",
    "dot_dot": "../secret.png",
    "very_deep_path": "/".join(["d"] * 1000) + "/x.png",
}


def _review_folder(root: Path) -> list[str]:
    images = root / "images"
    (images / "d").mkdir(parents=True)
    label_image().save(images / "label.png")
    os.symlink("loop2", images / "loop1")
    os.symlink("loop1", images / "loop2")
    os.symlink("self.png", images / "self.png")
    os.symlink(".", images / "d" / "d")
    (root / "secret.png").write_bytes((images / "label.png").read_bytes())
    _write_csv(
        root / "input.csv", [["index", "image_link", "group_id", "entity_name"], [0, "http://x/label.png", 1, ENTITY]]
    )
    _write_csv(root / "pred.csv", [["index", "prediction", "confidence"], [0, "500.0 gram", "0.5"]])
    port = free_port()
    where = ["--images", str(images), "--labels", str(root / "labels.csv"), "--cache-dir", str(root / "cache")]
    return [
        *specread_command(),
        "review",
        str(root / "pred.csv"),
        "--input",
        str(root / "input.csv"),
        *where,
        "--port",
        str(port),
    ]


def _write_csv(path: Path, rows: list[list[object]]) -> None:
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def _review(work: Path, names: dict[str, str], timeout: float) -> list[dict]:
    root = work / "review"
    cmd = _review_folder(root)
    port = int(cmd[cmd.index("--port") + 1])
    base = f"http://127.0.0.1:{port}"
    with open(root / "review.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=child_env(), start_new_session=True)
    results: list[dict] = []
    try:
        deadline = time.monotonic() + max(timeout, 120)
        while _healthz(port, "127.0.0.1", 2)[0] != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                why = (root / "review.log").read_text(errors="replace")[-300:]
                return [
                    _result("review_names", c, False, f"review did not start: {why}", hung=proc.poll() is None)
                    for c in names
                ]
            time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=10) as client:
            for case, name in names.items():
                try:
                    resp = client.get("/v1/review/image", params={"name": name})
                    code = resp.json().get("error", {}).get("code") if resp.status_code != 200 else "image"
                    status = resp.status_code
                except (httpx.HTTPError, ValueError) as exc:
                    status, code = None, type(exc).__name__
                alive = client.get("/healthz").status_code == 200
                handled = status is not None and 400 <= status < 500 and alive
                results.append(_result("review_names", case, handled, f"{status} {code}; healthz after: {alive}"))
    finally:
        kill_group(proc.pid)
        proc.wait(10)
    return results


# -- all of them ---------------------------------------------------------------------------------------------------
def _service_families(work: Path, quick: bool, timeout: float) -> list[dict]:
    image = _label_png(tiles=24)  # a read of about a second: abandoned ones left in the queue would show
    results: list[dict] = []
    with _server(work / "serve") as server:
        _read(server.port, "127.0.0.5", image, timeout)  # the first read after start-up is slower
        status, baseline, _ = _read(server.port, "127.0.0.5", image, timeout)
        if status != 200:
            return [_result("starvation", "baseline", False, f"a plain read answered {status}")]
        floods = ["idle_before_headers"] if quick else ["idle_before_headers", "slow_headers", "half_sent_bodies"]
        for variant in floods:
            results.append(_starvation(server, image, baseline, variant, timeout))
        leaves = (
            ["close_while_queued"] if quick else ["close_while_queued", "half_close_while_queued", "leave_mid_upload"]
        )
        for variant in leaves:
            results.append(_abandoned(server, image, baseline, variant, 12 if quick else 20))
    orphans = server.orphans()
    for r in results:
        r["orphans"] = orphans
    return results


def run_faults(work: Path, *, quick: bool = False, timeout: float = 60.0) -> list[dict]:
    """Run every scenario of this area under ``work`` (a scratch folder); one dict per scenario."""
    work.mkdir(parents=True, exist_ok=True)
    results = _service_families(work, quick, timeout)
    results.append(_uploads(work / "upload_many", 20 if quick else 100, False, timeout))
    if not quick:
        results.append(_uploads(work / "upload_one", 30, True, timeout))
    names = {k: ODD_NAMES[k] for k in ("1024_chars", "symlink_loop")} if quick else ODD_NAMES
    results += _review(work, names, timeout)
    return results


def main(argv: list[str] | None = None) -> list[dict]:
    """Run this module's scenarios and print them as JSON (see :func:`benchmarks.common.faults_main`)."""
    return faults_main(run_faults, __doc__ or "", argv)


if __name__ == "__main__":
    main()
