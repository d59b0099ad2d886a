"""Review and correct (issue 14), end to end: ``specread review`` in a subprocess, driven by headless Chromium.

The OCR pages of the generated images are in the server's cache already (under the accurate
preset's fingerprint), so the server never loads an OCR model and the test needs no ``slow``
mark. Uses the system Chromium through Playwright; skipped where either is missing. The test
fails if the page requests anything from another origin or raises a JavaScript error.
"""

from __future__ import annotations

import csv
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from review_fixtures import ReviewData, accurate_fingerprint, build_review_data
from specread.io.check import check_output

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")
from test_service_browser import CHROMIUM, CHROMIUM_ARGS, _free_port  # noqa: E402 - one Chromium set-up for both

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not shutil.which("chromium"), reason="chromium not installed"
)


class Server:
    """``specread review`` on a free loopback port; started and stopped (SIGTERM, as Ctrl-C) on demand."""

    def __init__(self, data: ReviewData, labels: Path, output: Path, log: Path) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.cmd = [
            *(sys.executable, "-c", "from specread.cli import app; app()", "review", data.predictions_csv),
            *("--input", data.input_csv, "--images", data.images, "--labels", labels, "--write-output", output),
            *("--cache-dir", data.cache, "--port", str(self.port)),
        ]
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen([str(c) for c in self.cmd], stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).json().get("status") == "ok":
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"specread review did not start:\n{self.log.read_text()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[ReviewData, Server, Path, Path]]:
    data = build_review_data(tmp_path / "data", accurate_fingerprint())
    labels, output = tmp_path / "reviewed.csv", tmp_path / "corrected.csv"
    server = Server(data, labels, output, tmp_path / "review.log")
    try:
        yield data, server, labels, output
    finally:
        server.stop()


def _shown(page, index: str) -> None:
    """Wait until row ``index`` is on the page and no request is in flight."""
    page.wait_for_selector(f'body[data-index="{index}"]:not([data-loading])', timeout=15_000)


def _labels(path: Path) -> dict[str, tuple[str, str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {r["index"]: (r["decision"], r["entity_value"], r["previous"]) for r in csv.DictReader(fh)}


def test_review_by_keyboard_and_mouse_reload_and_continue(setup, tmp_path: Path) -> None:
    data, server, labels, output = setup
    server.start()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        foreign: list[str] = []
        errors: list[str] = []
        page.on("request", lambda r: None if r.url.startswith((server.base, "data:")) else foreign.append(r.url))
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        page.goto(server.base + "/")
        _shown(page, "3")  # least confident first
        assert page.inner_text("#progress-text") == "0 / 4 reviewed"
        assert page.inner_text("#entity") == "item_volume" and page.inner_text("#answer") == "2.0 litre"
        page.wait_for_function("document.querySelectorAll('#overlay polygon.token').length === 2")
        assert page.locator("#overlay rect.choice.current").count() == 1
        assert page.locator("#choices .chip.current .chip-value").inner_text() == "2.0 litre"

        page.keyboard.press("Enter")  # accept
        _shown(page, "1")
        assert page.inner_text("#progress-text") == "1 / 4 reviewed"
        chips = page.locator("#choices .chip .chip-value").all_inner_texts()
        assert chips == ["500.0 gram", "250.0 gram"]
        assert page.locator("#choices .chip.current .chip-value").inner_text() == "250.0 gram"
        page.keyboard.press("1")  # pick the first candidate
        _shown(page, "2")

        page.click("#absent")  # mouse: not on the image
        _shown(page, "0")
        assert _labels(labels)["2"] == ("absent", "", "230.0 volt")
        page.keyboard.press("u")  # undo: row 2 again, its decision gone
        _shown(page, "2")
        assert "2" not in _labels(labels)

        page.click("#typed")  # type a value: checked against voltage's units while typing
        page.keyboard.type("5 kg")
        page.wait_for_selector("#typed-check.error")
        assert "kilogram is not a unit of voltage" in page.inner_text("#typed-check")
        assert page.is_disabled("#use-typed")
        page.fill("#typed", "")
        page.keyboard.type("110 V")
        page.wait_for_selector("#typed-check.ok:has-text('110.0 volt')")
        page.keyboard.press("Enter")
        _shown(page, "0")
        page.screenshot(path=str(tmp_path / "review.png"), full_page=True)

        page.reload()  # the page again: it continues at the first row without a decision
        _shown(page, "0")
        assert page.inner_text("#progress-text") == "3 / 4 reviewed"
        server.stop()
        server.start()  # and the server again, the same command
        page.reload()
        _shown(page, "0")
        assert page.inner_text("#progress-text") == "3 / 4 reviewed"
        page.click("#choices .chip:has-text('10.0 inch')")  # mouse: pick another candidate
        page.wait_for_selector('body[data-done="true"]')
        assert page.inner_text("#progress-text") == "4 / 4 reviewed"

        assert not foreign, f"the page fetched from outside the server: {foreign}"
        assert not errors, f"JavaScript errors: {errors}"
        browser.close()
    server.stop()

    assert _labels(labels) == {
        "3": ("accept", "2.0 litre", "2.0 litre"),
        "1": ("pick", "500.0 gram", "250.0 gram"),
        "2": ("typed", "110.0 volt", "230.0 volt"),
        "0": ("pick", "10.0 inch", "25.0 centimetre"),
    }
    assert check_output(output, data.input_csv).ok
    with open(output, newline="", encoding="utf-8") as fh:
        assert {r["index"]: r["prediction"] for r in csv.DictReader(fh)} == {
            "0": "10.0 inch",
            "1": "500.0 gram",
            "2": "110.0 volt",
            "3": "2.0 litre",
        }
