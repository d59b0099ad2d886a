"""io/download.py against a local HTTP server: good, broken, non-image, slow, failing-then-recovering links."""

from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import CliInvoke, FakeEngine, make_reader, write_csv
from specread.batch.local import predict_csv
from specread.io.dataset import Row, read_predictions, read_rows
from specread.io.download import MANIFEST_NAME, download_links, download_rows, read_manifest, select_links
from specread.ocr import engine as engine_module

Handler = Callable[[BaseHTTPRequestHandler, int], None]
"""Answers one request; gets the handler and the 1-based number of this request to the path."""


def _make_image_bytes(seed: int, fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(20, 28, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format=fmt)
    return buf.getvalue()


def _send(h: BaseHTTPRequestHandler, status: int, body: bytes = b"", ctype: str = "image/png") -> None:
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def _image(body: bytes) -> Handler:
    return lambda h, n: _send(h, 200, body)


def _status_then(statuses: list[int], body: bytes) -> Handler:
    """Answer the given error statuses first, then the image."""

    def handle(h: BaseHTTPRequestHandler, n: int) -> None:
        if n <= len(statuses):
            _send(h, statuses[n - 1], b"busy", "text/plain")
        else:
            _send(h, 200, body)

    return handle


def _cut_then(body: bytes, cuts: int = 1) -> Handler:
    """Promise the whole body but close the connection halfway, ``cuts`` times; then serve it."""

    def handle(h: BaseHTTPRequestHandler, n: int) -> None:
        if n > cuts:
            _send(h, 200, body)
            return
        h.send_response(200)
        h.send_header("Content-Type", "image/png")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body[: len(body) // 2])
        h.wfile.flush()
        h.close_connection = True

    return handle


def _slow(body: bytes, delay: float) -> Handler:
    def handle(h: BaseHTTPRequestHandler, n: int) -> None:
        time.sleep(delay)
        _send(h, 200, body)

    return handle


@dataclass
class _Server:
    """A threaded HTTP server on 127.0.0.1 with per-path handlers and request counts."""

    routes: dict[str, Handler] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    base: str = ""

    def url(self, name: str) -> str:
        return f"{self.base}/images/{name}"


@pytest.fixture
def server() -> Iterator[_Server]:
    state = _Server()

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            name = self.path.rsplit("/", 1)[-1]
            with state.lock:
                state.hits[name] += 1
                n = state.hits[name]
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                handler = state.routes.get(name)
                if handler is None:
                    _send(self, 404, b"not found", "text/plain")
                else:
                    handler(self, n)
            finally:
                with state.lock:
                    state.in_flight -= 1

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    httpd.daemon_threads = True
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def _make_rows(server: _Server, names: list[str]) -> list[Row]:
    return [Row(str(i), server.url(n), "0", "item_weight") for i, n in enumerate(names)]


def _fast(**kw: object) -> dict[str, object]:
    """Download options that keep tests quick: tiny backoff, short timeout."""
    return {"concurrency": 8, "retries": 2, "timeout": 2.0, "backoff": 0.01, **kw}


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name != MANIFEST_NAME}


def test_mixed_links_download_valid_images_and_record_failures(server: _Server, tmp_path: Path) -> None:
    good = {f"ok_{i}.png": _make_image_bytes(i) for i in range(4)}
    jpeg = _make_image_bytes(9, "JPEG")
    for name, body in good.items():
        server.routes[name] = _image(body)
    server.routes["photo.jpg"] = _image(jpeg)
    server.routes["truncated.jpg"] = _image(jpeg[: len(jpeg) // 2])  # served whole, but the image is cut
    server.routes["page.jpg"] = lambda h, n: _send(h, 200, b"<html>sorry</html>", "text/html")
    server.routes["empty.png"] = lambda h, n: _send(h, 200, b"")
    server.routes["flaky.png"] = _status_then([500, 503], good["ok_0.png"])
    server.routes["cut.png"] = _cut_then(_make_image_bytes(11))
    server.routes["always503.png"] = _status_then([503] * 10, b"")
    server.routes["forbidden.png"] = lambda h, n: _send(h, 403, b"no", "text/plain")
    names = [*good, "photo.jpg", "truncated.jpg", "page.jpg", "empty.png", "flaky.png", "cut.png"]
    names += ["always503.png", "forbidden.png", "missing.png"]
    links = [(server.url(n), n) for n in names]
    folder = tmp_path / "images"

    stats = download_links(links, folder, **_fast())  # type: ignore[arg-type]

    ok = {*good, "photo.jpg", "flaky.png", "cut.png"}
    assert _files(folder) == ok  # no placeholder, no temp file
    assert (folder / "photo.jpg").read_bytes() == jpeg
    assert (stats.downloaded, stats.skipped, stats.failed) == (len(ok), 0, len(names) - len(ok))
    assert server.hits["flaky.png"] == 3 and server.hits["cut.png"] == 2
    assert server.hits["always503.png"] == 3  # 1 + retries
    assert server.hits["forbidden.png"] == server.hits["missing.png"] == server.hits["page.jpg"] == 1
    manifest = read_manifest(folder)
    assert {f for f, r in manifest.items() if r.status == "ok"} == ok
    reasons = {f: r.reason for f, r in manifest.items() if r.status == "failed"}
    assert reasons["missing.png"] == "HTTP 404" and reasons["forbidden.png"] == "HTTP 403"
    assert "HTTP 503" in reasons["always503.png"] and "3 attempts" in reasons["always503.png"]
    assert reasons["page.jpg"] == "not an image"
    assert reasons["empty.png"] == "file is empty"
    assert "truncated" in reasons["truncated.jpg"]
    assert stats.failures == reasons


def test_rerun_skips_present_files_and_retries_failures(server: _Server, tmp_path: Path) -> None:
    body = _make_image_bytes(1)
    server.routes["a.png"] = _image(body)
    server.routes["b.png"] = _status_then([404], body)  # missing first, published later
    links = [(server.url(n), n) for n in ("a.png", "b.png")]
    folder = tmp_path / "images"

    first = download_links(links, folder, **_fast())  # type: ignore[arg-type]
    second = download_links(links, folder, **_fast())  # type: ignore[arg-type]

    assert (first.downloaded, first.failed) == (1, 1)
    assert (second.downloaded, second.skipped, second.failed) == (1, 1, 0)
    assert server.hits == Counter({"a.png": 1, "b.png": 2})
    assert read_manifest(folder)["b.png"].status == "ok"


def test_corrupt_leftover_is_downloaded_again(server: _Server, tmp_path: Path) -> None:
    body = _make_image_bytes(2)
    server.routes["a.png"] = _image(body)
    server.routes["b.png"] = _image(_make_image_bytes(3))
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.png").write_bytes(body[:40])  # a half-written file from another tool
    (folder / "b.png").write_bytes(_make_image_bytes(3))  # a good file from another tool

    stats = download_links([(server.url(n), n) for n in ("a.png", "b.png")], folder, **_fast())  # type: ignore[arg-type]

    assert (folder / "a.png").read_bytes() == body
    assert (stats.downloaded, stats.skipped) == (1, 1)
    assert server.hits == Counter({"a.png": 1})
    assert read_manifest(folder)["b.png"].reason == "present, validated"


def test_unique_links_fetched_once_and_concurrently_within_bound(server: _Server, tmp_path: Path) -> None:
    names = [f"s{i}.png" for i in range(8)]
    for i, n in enumerate(names):
        server.routes[n] = _slow(_make_image_bytes(i), 0.2)
    rows = _make_rows(server, names + names[::-1] + names[:3])  # every link asked for two or three times

    stats = download_rows(rows, tmp_path / "images", concurrency=4, retries=0, timeout=5.0)

    assert stats.links == 8 and stats.downloaded == 8
    assert set(server.hits.values()) == {1}
    assert 2 <= server.max_in_flight <= 4


def test_slow_server_times_out_then_fails(server: _Server, tmp_path: Path) -> None:
    server.routes["stuck.png"] = _slow(_make_image_bytes(5), 1.0)
    server.routes["fine.png"] = _slow(_make_image_bytes(6), 0.05)
    links = [(server.url(n), n) for n in ("stuck.png", "fine.png")]

    stats = download_links(links, tmp_path / "images", **_fast(timeout=0.3, retries=1))  # type: ignore[arg-type]

    assert stats.downloaded == 1 and stats.failures.keys() == {"stuck.png"}
    assert "timeout" in stats.failures["stuck.png"] and server.hits["stuck.png"] == 2


def test_select_links_limit_sample_and_name_clash() -> None:
    rows = [Row(str(i), f"https://h.invalid/images/{i % 5}.jpg", "0", "width") for i in range(20)]
    rows.append(Row("20", "https://other.invalid/x/0.jpg", "0", "width"))  # same file name, other host
    rows.append(Row("21", "", "0", "width"))

    pairs = select_links(rows)
    sample = select_links(rows, sample=3, seed=7)

    assert [n for _, n in pairs] == [f"{i}.jpg" for i in range(5)]
    assert pairs[0][0] == "https://h.invalid/images/0.jpg"
    assert select_links(rows, limit=2) == pairs[:2]
    assert len(sample) == 3 and set(sample) <= set(pairs)
    assert sample == select_links(rows, sample=3, seed=7)
    assert sample != select_links(rows, sample=3, seed=8) or sample != select_links(rows, sample=3, seed=9)


def test_manifest_ignores_a_torn_last_line(server: _Server, tmp_path: Path) -> None:
    server.routes["a.png"] = _image(_make_image_bytes(1))
    folder = tmp_path / "images"
    download_links([(server.url("a.png"), "a.png")], folder, **_fast())  # type: ignore[arg-type]
    with open(folder / MANIFEST_NAME, "a", encoding="utf-8") as fh:
        fh.write('{"link": "http://x/b.png", "file": "b.pn')  # killed mid-line

    assert list(read_manifest(folder)) == ["a.png"]
    lines = (folder / MANIFEST_NAME).read_text().splitlines()
    assert json.loads(lines[0])["status"] == "ok"


def test_cli_download_then_failed_image_predicts_empty(server: _Server, tmp_path: Path, cli: CliInvoke) -> None:
    img = Image.open(io.BytesIO(_make_image_bytes(42))).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    server.routes["label.png"] = _image(buf.getvalue())
    input_csv = write_csv(
        tmp_path / "in.csv",
        ["index", "image_link", "group_id", "entity_name"],
        [(0, server.url("label.png"), "0", "item_weight"), (1, server.url("gone.png"), "0", "item_weight")],
    )
    images = tmp_path / "images"

    result = cli("download", input_csv, "--images", images, "--retries", "0")

    assert result.exit_code == 0, result.output
    assert "1 downloaded" in result.output and "1 failed" in result.output
    assert read_manifest(images)["gone.png"].reason == "HTTP 404"
    engine = FakeEngine()
    engine.register(images / "label.png", ["Net Wt. 500 g"])
    predict_csv(input_csv, images, tmp_path / "out.csv", reader=make_reader(engine))
    assert read_predictions(tmp_path / "out.csv") == {"0": "500.0 gram", "1": ""}
    assert [r.index for r in read_rows(input_csv)] == ["0", "1"]


def test_cli_download_limit(server: _Server, tmp_path: Path, cli: CliInvoke) -> None:
    for i in range(3):
        server.routes[f"{i}.png"] = _image(_make_image_bytes(i))
    input_csv = write_csv(
        tmp_path / "in.csv",
        ["index", "image_link", "group_id", "entity_name"],
        [(i, server.url(f"{i}.png"), "0", "width") for i in range(3)],
    )

    result = cli("download", input_csv, "--images", tmp_path / "img", "--limit", "2")

    assert result.exit_code == 0, result.output
    assert _files(tmp_path / "img") == {"0.png", "1.png"}


def test_cli_train_cleans_and_downloads_first(
    server: _Server, tmp_path: Path, cli: CliInvoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = FakeEngine()
    monkeypatch.setitem(engine_module.ENGINES, "rapidocr", lambda _settings: engine)
    rows = []
    for n in range(12):  # twelve product labels on the server, none on disk yet
        img = Image.open(io.BytesIO(_make_image_bytes(100 + n))).convert("RGB")
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        server.routes[f"p{n}.png"] = _image(buf.getvalue())
        engine.register(img, [f"Net Wt. {100 + n} g", f"Max load {n + 2} kg"])
        value = f"[{100 + n}.0, 1.0] gram" if n == 0 else f"{100 + n}.0 gram"  # one list label to clean
        rows.append((server.url(f"p{n}.png"), str(n % 3), "item_weight", value))
    labels = write_csv(tmp_path / "labels.csv", ["image_link", "group_id", "entity_name", "entity_value"], rows)
    images, model = tmp_path / "images", tmp_path / "model"

    result = cli("train", labels, "--images", images, "-o", model, "--clean", "--download", "--holdout", "0")

    assert result.exit_code == 0, result.output
    assert len(list(images.glob("p*.png"))) == 12
    cleaned = tmp_path / "model.labels.clean.csv"
    assert "[" not in cleaned.read_text() and "100.0 gram" in cleaned.read_text()  # [100.0, 1.0] -> the max
    card = json.loads((model / "model.json").read_text())
    assert card["data"]["labels"] == cleaned.name and card["data"]["rows_used"] == 12
