"""POST /v1/read and friends through FastAPI's TestClient: happy path and hostile input.

The OCR pool runs as threads here (same code path as processes, minus the
start-up cost); tests that reach the real OCR engine are marked slow.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import threading
import time
import warnings
import zlib
from collections.abc import Iterator
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from conftest import CliInvoke, FakeEngine

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient
from PIL import Image

from specread.errors import ApiError
from specread.io.images import IMAGE_FORMATS, decode_image
from specread.service import app as app_module
from specread.service import guards, worker
from specread.service.app import create_app, uvicorn_options
from specread.service.guards import check_image
from specread.service.pool import OcrPool
from specread.settings import ReaderConfig, ServiceSettings
from specread.synth import LabelSpec, render_label
from specread.units.registry import get_registry

MiB = 1024 * 1024


def _make_png(lines: tuple[str, ...] = ("Net Wt. 500 g", "Premium Quality"), seed: int = 1) -> bytes:
    buf = io.BytesIO()
    render_label(LabelSpec(lines, {}), seed=seed).save(buf, "PNG")
    return buf.getvalue()


def _make_bomb_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width x height white pixels: tens of KB on disk, hundreds of Mpx decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" + b"\xff" * ((width + 7) // 8)
    idat = zlib.compress(row * height, 9)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _make_settings(**overrides: object) -> ServiceSettings:
    base: dict[str, object] = {"reader": ReaderConfig(cache_dir=None), "executor": "thread", "warmup": False}
    return ServiceSettings(**(base | overrides))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(_make_settings())) as c:
        yield c


def _post_image(client: TestClient, data: bytes, entities: object = "item_weight", name: str = "label.png"):
    return client.post("/v1/read", files={"image": (name, data, "image/png")}, data={"entities": entities})


def _assert_error(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert "Traceback" not in resp.text
    return body["error"]


# -- happy path (real OCR) ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_read_returns_value_evidence_and_tokens(client: TestClient) -> None:
    png = _make_png(("Input 230V", "Power 1500W", "Made in EU"))
    resp = _post_image(client, png, ["voltage", "wattage", "voltage"])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["width"], body["height"]) == (640, 480)
    assert list(body["predictions"]) == ["voltage", "wattage"]  # duplicates dropped, order kept
    volt, watt = body["predictions"]["voltage"], body["predictions"]["wattage"]
    assert (volt["prediction"], volt["value"], volt["unit"]) == ("230.0 volt", 230.0, "volt")
    assert watt["prediction"] == "1500.0 watt"
    assert 0.0 < volt["confidence"] <= 1.0
    x0, y0, x1, y1 = volt["evidence"]["box"]
    assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
    texts = [t["text"] for t in body["tokens"]]
    assert volt["evidence"]["text"] in texts
    assert all(len(t["quad"]) == 4 and len(t["box"]) == 4 for t in body["tokens"])


# -- size limits -------------------------------------------------------------------------------------------------
def test_default_upload_limit_is_20_mb() -> None:
    with TestClient(create_app(_make_settings())) as c:
        err = _assert_error(_post_image(c, b"\0" * (20 * MiB + 300_000)), 413, "upload_too_large")
    assert str(20 * MiB) in err["message"]


def test_configured_upload_limit() -> None:
    with TestClient(create_app(_make_settings(max_upload_bytes=64 * 1024))) as c:
        _assert_error(_post_image(c, b"\0" * (64 * 1024 + 1)), 413, "upload_too_large")
        _assert_error(_post_image(c, b"\0" * (400 * 1024)), 413, "upload_too_large")
        # at the limit the size check passes and the next check speaks
        _assert_error(_post_image(c, b"\0" * (64 * 1024)), 415, "not_an_image")


def _asgi_post(app, headers: list[tuple[bytes, bytes]], chunks: Iterator[bytes]) -> tuple[int, dict, int]:
    """POST straight to the ASGI app, feeding the body chunk by chunk; returns (status, json, chunks read)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/read",
        "raw_path": b"/v1/read",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    read = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal read
        read += 1
        return {"type": "http.request", "body": next(chunks), "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), read


def test_streamed_upload_is_cut_off_at_the_limit() -> None:
    """A chunked body with no Content-Length that never ends: refused after reading about the limit, not all of it."""
    limit = 64 * 1024
    app = create_app(_make_settings(max_upload_bytes=limit))
    boundary = b"xyzzy"

    def endless() -> Iterator[bytes]:
        yield (
            b"--" + boundary + b'\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n"
        )
        while True:
            yield b"\0" * 16384

    headers = [(b"content-type", b"multipart/form-data; boundary=" + boundary), (b"transfer-encoding", b"chunked")]
    status, body, read = _asgi_post(app, headers, endless())
    assert status == 413 and body["error"]["code"] == "upload_too_large"
    assert read <= (limit + 256 * 1024) // 16384 + 3


def test_declared_content_length_over_the_limit_is_refused_before_reading() -> None:
    app = create_app(_make_settings())
    headers = [(b"content-type", b"multipart/form-data; boundary=x"), (b"content-length", str(10**12).encode())]
    status, body, read = _asgi_post(app, headers, iter(()))
    assert (status, body["error"]["code"], read) == (413, "upload_too_large", 0)


# -- not images, bombs, broken images ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [
        b"hello, this is text",
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",  # EPS would run Ghostscript
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"\x89PNG\r\n",  # a signature and nothing else
    ],
)
def test_non_images_are_415(client: TestClient, data: bytes) -> None:
    _assert_error(_post_image(client, data), 415, "not_an_image")


def test_empty_upload_is_422(client: TestClient) -> None:
    # an empty file part named like a file counts as "no image" -> invalid request
    resp = client.post("/v1/read", files={"image": ("a.png", b"", "image/png")}, data={"entities": "item_weight"})
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] in {"bad_image", "invalid_request"}


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    "size",
    [
        (15_000, 15_000),  # over twice MAX_IMAGE_PIXELS: Pillow itself refuses to open it
        (10_000, 10_000),  # over MAX_IMAGE_PIXELS but under twice: Pillow only warns, the service refuses
    ],
)
def test_decompression_bomb_is_refused_from_the_header(client: TestClient, size: tuple[int, int]) -> None:
    bomb = _make_bomb_png(*size)
    assert len(bomb) < 200_000
    assert size[0] * size[1] > Image.MAX_IMAGE_PIXELS
    err = _assert_error(_post_image(client, bomb), 422, "image_too_large")
    assert "pixels" in err["message"]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_max_image_pixels_is_honoured(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    png = _make_png()  # drawn before the limit drops (Pillow's font rendering checks it too)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200_000)  # 640x480 = 307200 pixels
    err = _assert_error(_post_image(client, png), 422, "image_too_large")
    assert "640x480" in err["message"]


def test_truncated_image_is_422(client: TestClient) -> None:
    png = _make_png()
    _assert_error(_post_image(client, png[: len(png) // 2]), 422, "bad_image")


# -- request validation ------------------------------------------------------------------------------------------
def test_unknown_entity_is_422_and_lists_valid_ones(client: TestClient) -> None:
    err = _assert_error(_post_image(client, _make_png(), ["item_weight", "colour"]), 422, "unknown_entity")
    assert "'colour'" in err["message"]
    assert all(name in err["message"] for name in get_registry().entities)


@pytest.mark.parametrize(
    ("files", "data"),
    [
        (None, {"entities": "item_weight"}),  # no image at all
        ({"image": ("a.png", b"x", "image/png")}, {"entities": "item_weight", "image_url": "http://e.com/a.png"}),
        ({"image": ("a.png", b"x", "image/png")}, {}),  # no entity
        ({"image": ("a.png", b"x", "image/png")}, {"entities": "item_weight", "group_id": "g" * 500}),
    ],
)
def test_invalid_requests_are_422(client: TestClient, files, data) -> None:
    _assert_error(client.post("/v1/read", files=files, data=data), 422, "invalid_request")


def test_json_body_is_422_not_500(client: TestClient) -> None:
    _assert_error(client.post("/v1/read", json={"entities": ["item_weight"]}), 422, "invalid_request")


def test_malformed_multipart_is_400_bad_request(client: TestClient) -> None:
    resp = client.post("/v1/read", content=b"x", headers={"content-type": "multipart/form-data"})  # no boundary
    _assert_error(resp, 400, "bad_request")


def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    _assert_error(client.get("/v2/nothing"), 404, "not_found")
    _assert_error(client.get("/v1/read"), 405, "method_not_allowed")


# -- failures inside the server ----------------------------------------------------------------------------------
def test_unexpected_errors_are_a_generic_json_500(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object) -> dict:
        raise RuntimeError("secret internal detail /etc/shadow")

    monkeypatch.setattr(worker, "read_image", explode)
    with TestClient(create_app(_make_settings()), raise_server_exceptions=False) as c:
        resp = _post_image(c, _make_png())
    _assert_error(resp, 500, "internal_error")
    assert "secret" not in resp.text and "shadow" not in resp.text


def test_full_queue_is_503_and_health_stays_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def blocked(*args: object) -> dict:
        release.wait(10)
        return {"width": 1, "height": 1, "tokens": [], "predictions": {}}

    monkeypatch.setattr(worker, "read_image", blocked)
    app = create_app(_make_settings(max_pending=1))
    with TestClient(app) as c:
        first = threading.Thread(target=_post_image, args=(c, _make_png()))
        first.start()
        try:
            deadline = time.monotonic() + 5
            while app.state.pool.pending < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            started = time.monotonic()
            health = c.get("/healthz")
            assert health.status_code == 200 and health.json()["pending"] == 1
            assert time.monotonic() - started < 1.0  # the only worker is busy; health does not wait for it
            resp = _post_image(c, _make_png(seed=2))
            _assert_error(resp, 503, "busy")
            assert resp.headers["retry-after"] == "1"
        finally:
            release.set()
            first.join(10)


def test_queued_image_bytes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def blocked(*args: object) -> dict:
        release.wait(10)
        return {"width": 1, "height": 1, "tokens": [], "predictions": {}}

    monkeypatch.setattr(worker, "read_image", blocked)
    png = _make_png()
    app = create_app(_make_settings(max_queued_bytes=len(png) + 1000))  # the body: the image and its form framing
    with TestClient(app) as c:
        first = threading.Thread(target=_post_image, args=(c, png))
        first.start()
        try:
            deadline = time.monotonic() + 5
            while app.state.pool.pending < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            _assert_error(_post_image(c, _make_png(seed=2)), 503, "busy")  # one image fits, two do not
        finally:
            release.set()
            first.join(10)
        assert app.state.pool.queued_bytes == 0
        assert _post_image(c, png).status_code == 200  # room again once the first is done


class _BrokenExecutor(Executor):
    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        future.set_exception(BrokenProcessPool("a worker died"))
        return future


def test_dead_worker_pool_is_replaced() -> None:
    pool = OcrPool(_make_settings())
    broken = _BrokenExecutor()
    pool._executor = broken
    with pytest.raises(ApiError) as info:
        asyncio.run(pool.read(b"img", ("item_weight",), None))
    assert info.value.status == 503 and info.value.code == "worker_died"
    assert pool.pending == 0
    assert pool.executor is not broken  # the next request gets a fresh pool
    pool.close()


# -- the other endpoints -----------------------------------------------------------------------------------------
def test_healthz_and_entities(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "workers": 1, "pending": 0}
    entities = client.get("/v1/entities").json()["entities"]
    registry = get_registry()
    assert {e["name"]: tuple(e["units"]) for e in entities} == {n: s.units for n, s in registry.entities.items()}


def test_health_says_starting_until_warm() -> None:
    app = create_app(_make_settings(warmup=True))
    assert TestClient(app).get("/healthz").json()["status"] == "starting"  # no lifespan: never warmed


def test_page_docs_and_schema_are_served_locally(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "<title>specread" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "cdn." not in docs.text and "unpkg" not in docs.text
    assert client.get("/static-docs/swagger-ui-bundle.js").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "/v1/read" in schema["paths"] and "/healthz" in schema["paths"]
    assert "413" in schema["paths"]["/v1/read"]["post"]["responses"]


# -- HEAD, redirects ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/healthz", "/docs", "/openapi.json", "/static/app.js", "/v1/entities"])
def test_head_is_answered_wherever_get_is(client: TestClient, path: str) -> None:
    get, head = client.get(path), client.head(path)
    assert get.status_code == head.status_code == 200
    assert head.content == b""
    for name in ("content-type", "content-length", "x-content-type-options"):
        assert head.headers.get(name) == get.headers.get(name), name


def test_post_only_routes_refuse_head_and_get(client: TestClient) -> None:
    for method in ("HEAD", "GET"):
        resp = client.request(method, "/v1/read")
        assert resp.status_code == 405 and resp.headers["content-type"].startswith("application/json")
        assert resp.headers["allow"] == "POST"


@pytest.mark.parametrize(("path", "location"), [("/static", "/static/"), ("/healthz/", "/healthz")])
def test_redirects_do_not_reflect_the_host_header(client: TestClient, path: str, location: str) -> None:
    resp = client.get(path, headers={"host": "evil.example"}, follow_redirects=False)
    assert resp.is_redirect and resp.headers["location"] == location
    assert "evil" not in resp.text


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        (b"http://evil.example/static/?a=1", b"/static/?a=1"),
        (b"https://evil.example", b"/"),
        (b"//evil.example/x", b"/x"),  # a path never turns into a protocol-relative URL
        (b"/\\evil.example/x", b"/evil.example/x"),
        (b"/static/", b"/static/"),
    ],
)
def test_redirect_locations_are_reduced_to_a_path(location: bytes, expected: bytes) -> None:
    assert guards._path_only(location) == expected


# -- one list of image formats -----------------------------------------------------------------------------------
def _encoded_samples() -> list:
    """A small image in every format this Pillow can write (in the first mode the writer takes)."""
    Image.init()
    image = Image.new("RGB", (32, 24), (200, 30, 30))
    samples = []
    for fmt in sorted(Image.SAVE):
        for mode in ("RGB", "L", "1"):
            buf = io.BytesIO()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # deprecated writers
                    image.convert(mode).save(buf, fmt)
            except Exception:  # writers that need a plugin, a mode or a size
                continue
            samples.append(pytest.param(fmt, buf.getvalue(), id=fmt))
            break
    return samples


@pytest.mark.parametrize(("fmt", "data"), _encoded_samples())
def test_what_the_service_accepts_the_decoder_reads(fmt: str, data: bytes) -> None:
    try:
        check_image(data)
    except ApiError as exc:
        assert exc.code == "not_an_image", exc
        assert fmt not in IMAGE_FORMATS
        return
    assert decode_image(data, fmt).shape[:2] == (24, 32)


def test_service_uses_the_decoders_format_list() -> None:
    assert guards.IMAGE_FORMATS is IMAGE_FORMATS
    assert "EPS" not in IMAGE_FORMATS and "PDF" not in IMAGE_FORMATS


# -- the OCR cache is opt-in -------------------------------------------------------------------------------------
def test_default_service_keeps_no_ocr_cache(fake_rapidocr: FakeEngine, _isolated_cache: Path) -> None:
    settings = ServiceSettings(executor="thread", warmup=False)
    assert settings.reader.cache_dir is None
    png = _make_png()
    with TestClient(create_app(settings)) as c:
        for _ in range(2):
            assert _post_image(c, png).status_code == 200
    assert fake_rapidocr.calls == 2  # read twice: no answer from a cache (nor a timing difference)
    assert not [p for p in _isolated_cache.rglob("*") if p.is_file()]


def test_service_cache_when_asked(fake_rapidocr: FakeEngine, tmp_path: Path) -> None:
    settings = ServiceSettings(reader=ReaderConfig(cache_dir=str(tmp_path)), executor="thread", warmup=False)
    png = _make_png()
    with TestClient(create_app(settings)) as c:
        for _ in range(2):
            assert _post_image(c, png).status_code == 200
    assert fake_rapidocr.calls == 1
    assert [p for p in tmp_path.rglob("*") if p.is_file()]


# -- settings and `specread serve` options -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides",
    [
        {"header_timeout": 0},
        {"header_timeout": float("inf")},
        {"body_timeout": -1},
        {"max_connections": 0},
        {"max_client_connections": 0},
        {"max_client_requests": 0},
        {"forwarded_allow_ips": ("not-an-ip",)},
        {"forwarded_allow_ips": "127.0.0.1"},
    ],
)
def test_invalid_settings_are_refused(overrides: dict) -> None:
    with pytest.raises(ValueError):
        _make_settings(**overrides)


def test_default_settings_and_uvicorn_options() -> None:
    settings = ServiceSettings()
    assert (settings.header_timeout, settings.body_timeout, settings.max_connections) == (10.0, 60.0, 100)
    assert settings.forwarded_allow_ips == () and settings.body_idle_timeout == 15.0
    options = uvicorn_options(settings)
    assert options["proxy_headers"] is False and options["limit_concurrency"] == 100
    assert options["http"].header_timeout == 10.0
    assert options["http"].client_connections == settings.max_client_connections
    proxies = _make_settings(forwarded_allow_ips=("10.0.0.1", "10.1.0.0/16"))
    trusting = uvicorn_options(proxies)
    assert trusting["proxy_headers"] is True and trusting["forwarded_allow_ips"] == ["10.0.0.1", "10.1.0.0/16"]
    assert [trusting["http"].trusted(a) for a in ("10.1.2.3", "10.0.0.1", "10.0.0.2", "::1", "x")] == [
        True,
        True,
        False,
        False,
        False,
    ]
    assert not options["http"].trusted("127.0.0.1")


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Capture what `specread serve` would run instead of starting a server."""
    seen: dict = {}
    monkeypatch.setattr(app_module, "serve", lambda settings, **kwargs: seen.update(settings=settings, **kwargs))
    return seen


def test_serve_defaults(cli: CliInvoke, served: dict) -> None:
    result = cli("serve")
    assert result.exit_code == 0, result.output
    s = served["settings"]
    assert (s.header_timeout, s.body_timeout, s.max_connections, s.forwarded_allow_ips) == (10.0, 60.0, 100, ())
    assert s.reader.cache_dir is None


def test_serve_options_reach_the_settings(cli: CliInvoke, served: dict, tmp_path: Path) -> None:
    args = ["--header-timeout", "3", "--body-timeout", "20", "--max-connections", "7", "--cache-dir", tmp_path]
    args += ["--max-client-connections", "5", "--max-client-requests", "4"]
    result = cli("serve", *args, "--forwarded-allow-ips", "10.0.0.1, 10.1.0.0/16")
    assert result.exit_code == 0, result.output
    s = served["settings"]
    assert (s.header_timeout, s.body_timeout, s.max_connections) == (3.0, 20.0, 7)
    assert (s.max_client_connections, s.max_client_requests) == (5, 4)
    assert s.forwarded_allow_ips == ("10.0.0.1", "10.1.0.0/16")
    assert s.reader.cache_dir == str(tmp_path)
    assert cli("serve", "--no-cache").exit_code == 0 and served["settings"].reader.cache_dir is None


def test_serve_refuses_a_bad_proxy_address(cli: CliInvoke, served: dict) -> None:
    result = cli("serve", "--forwarded-allow-ips", "10.0.0.1,proxy.local")
    assert result.exit_code == 2 and "proxy.local" in result.output
    assert not served
