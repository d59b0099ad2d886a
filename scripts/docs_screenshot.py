"""Draw the docs' picture: the web page of ``specread serve`` reading a generated label.

The label is synthetic (:func:`specread.synth.render_label`), never a dataset image. The script
starts the real service on a free loopback port, opens its page in the system Chromium through
Playwright (the ``serve`` and ``dev`` extras), reads the label for three entities and saves a
screenshot of the page with every OCR box and the chosen ones highlighted.

Usage:
    python scripts/docs_screenshot.py                          # writes docs/screenshot.png
    python scripts/docs_screenshot.py --out /tmp/page.png --chromium /usr/bin/chromium
"""

from __future__ import annotations

import argparse
import io
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from specread.synth import LabelSpec, render_label

ROOT = Path(__file__).resolve().parents[1]
LINES = ("Net Wt. 500 g", "Input 230V ~ 50Hz", "Size 25 x 12 cm", "Made with care")
ENTITIES = ("item_weight", "voltage", "width")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("specread serve exited before it was ready")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).json().get("status") == "ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise SystemExit("specread serve did not become ready")


def _label_png() -> bytes:
    buf = io.BytesIO()
    render_label(LabelSpec(LINES, {}), size=(720, 420), seed=3).save(buf, "PNG")
    return buf.getvalue()


def screenshot(out: Path, chromium: str) -> None:
    """Serve, read the generated label in the page, and save the page as ``out``."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-c", "from specread.cli import app; app()", "serve", "--port", str(port)]
    with tempfile.TemporaryDirectory() as cache:
        proc = subprocess.Popen([*cmd, "--workers", "1", "--cache-dir", cache, "--log-level", "warning"])
        try:
            _wait_healthy(base, proc)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 820})
                page.goto(base + "/")
                page.wait_for_selector('#entity-list input[value="voltage"]')
                page.set_input_files(
                    "#file", files=[{"name": "label.png", "mimeType": "image/png", "buffer": _label_png()}]
                )
                for box in page.locator("#entity-list input").all():
                    box.set_checked(box.get_attribute("value") in ENTITIES)
                page.click("#read")
                page.wait_for_selector("#results:not([hidden]) #values tbody tr", timeout=60_000)
                page.screenshot(path=str(out), full_page=False)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    screenshot(args.out, args.chromium)
    print(args.out)


if __name__ == "__main__":
    main()
