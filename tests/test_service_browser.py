"""The web page, end to end: `specread serve` in a subprocess, driven by headless Chromium.

Uses the system Chromium (Debian package ``chromium``) through Playwright;
skipped where either is missing. Nothing outside 127.0.0.1 is contacted: the
test fails if the page requests anything from another origin.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from specread.synth import LabelSpec, render_label

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("SPECREAD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists() and not shutil.which("chromium"), reason="chromium not installed"),
]


def _make_png(lines: tuple[str, ...], seed: int) -> bytes:
    buf = io.BytesIO()
    render_label(LabelSpec(lines, {}), seed=seed).save(buf, "PNG")
    return buf.getvalue()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real service (`specread serve`, process pool) on a free loopback port."""
    port = _free_port()
    cache = tmp_path_factory.mktemp("ocr-cache")
    log = (tmp_path_factory.mktemp("log") / "serve.log").open("w+")
    cmd = [sys.executable, "-c", "from specread.cli import app; app()", "serve", "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--cache-dir", str(cache), "--log-level", "warning"], stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).json().get("status") == "ok":
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"specread serve did not start:\n{log.read()}")
            time.sleep(0.25)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture()
def page(server: str):
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
        page = context.new_page()
        foreign: list[str] = []
        page.on("request", lambda r: None if r.url.startswith((server, "data:", "blob:")) else foreign.append(r.url))
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        assert not foreign, f"the page fetched from outside the service: {foreign}"
        assert not errors, f"JavaScript errors: {errors}"
        browser.close()


def _read(page, expected_rows: int = 1) -> None:
    page.click("#read")
    page.wait_for_selector("#results:not([hidden]) #values tbody tr", timeout=60_000)
    assert page.locator("#values tbody tr").count() == expected_rows


def _row(page, entity: str) -> dict[str, str]:
    row = page.locator(f'#values tbody tr[data-entity="{entity}"]')
    cells = row.locator("td").all_inner_texts()
    return {"value": cells[1], "confidence": cells[2], "evidence": cells[3]}


def test_pick_an_image_and_see_the_value_highlighted(page, server: str, tmp_path: Path) -> None:
    page.goto(server + "/")
    page.wait_for_selector('#entity-list input[value="voltage"]')
    page.set_input_files(
        "#file", files=[{"name": "label.png", "mimeType": "image/png", "buffer": _make_png(("Input 230V", "NEW"), 5)}]
    )
    page.uncheck('#entity-list input[value="item_weight"]')
    page.check('#entity-list input[value="voltage"]')
    _read(page)

    row = _row(page, "voltage")
    assert row["value"] == "230.0 volt"
    assert row["confidence"].endswith("%")
    assert "230" in row["evidence"]

    # every OCR line is boxed, and the chosen one is highlighted over it
    assert page.locator("#overlay polygon.token").count() >= 2
    box = page.locator('#overlay rect.evidence[data-entity="voltage"]')
    assert box.count() == 1
    drawn = box.bounding_box()
    image = page.locator("#preview").bounding_box()
    assert drawn and image and drawn["width"] > 20 and drawn["height"] > 10
    assert image["x"] <= drawn["x"] and drawn["x"] + drawn["width"] <= image["x"] + image["width"] + 1
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    if os.environ.get("SPECREAD_SCREENSHOT"):
        page.screenshot(path=os.environ["SPECREAD_SCREENSHOT"], full_page=True)

    # "copy as JSON" puts the same result on the clipboard
    page.click("#copy")
    page.wait_for_selector("#copied:has-text('copied')")
    copied = json.loads(page.evaluate("navigator.clipboard.readText()"))
    assert copied["predictions"]["voltage"]["prediction"] == "230.0 volt"
    assert len(copied["tokens"]) == page.locator("#overlay polygon.token").count()


def test_drop_an_image_and_errors_are_shown(page, server: str) -> None:
    page.goto(server + "/")
    page.wait_for_selector('#entity-list input[value="item_weight"]:checked')
    png = _make_png(("Net Wt. 750 g", "Organic"), 9)
    transfer = page.evaluate_handle(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
            return dt;
        }""",
        base64.b64encode(png).decode(),
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    assert "dropped.png" in page.inner_text("#file-name")
    _read(page)
    assert _row(page, "item_weight")["value"] == "750.0 gram"
    assert page.locator('#overlay rect.evidence[data-entity="item_weight"]').count() == 1

    # a loopback URL is refused by the default policy, and the page says why
    page.fill("#url", f"{server}/static/style.css")
    page.dispatch_event("#url", "change")
    page.click("#read")
    page.wait_for_selector("#status.error")
    assert "non-public address" in page.inner_text("#status")
