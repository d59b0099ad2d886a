#!/usr/bin/env bash
# Set up specread with its test dependencies in .venv, then lint and run the tests.
# Arguments go to pytest (bash scripts/test.sh -q, bash scripts/test.sh -m "not slow").
#
# The browser tests (tests/test_service_browser.py, tests/test_review_browser.py) drive the system
# Chromium through Playwright, which never downloads a browser here. Where Chromium is missing it is
# installed with apt-get when this runs as root (a container, CI); otherwise those tests skip and
# one note at the end says how to run them.
set -euo pipefail
cd "$(dirname "$0")/.."

# The same rule the browser tests use to find Chromium ($SPECREAD_CHROMIUM, or chromium on PATH).
have_chromium() {
    [ -x "${SPECREAD_CHROMIUM:-/usr/bin/chromium}" ] || command -v chromium >/dev/null 2>&1
}

if ! have_chromium && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Chromium for the browser tests (apt-get install chromium)..."
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
        echo "warning: apt-get could not install Chromium; the browser tests will be skipped" >&2
    fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev,serve,ray,vlm,eda]"
.venv/bin/ruff check src tests benchmarks
status=0
.venv/bin/python -m pytest "$@" || status=$?

if ! have_chromium; then
    cat <<'EOF'

NOTE: the browser tests were skipped: no Chromium was found (looked for $SPECREAD_CHROMIUM,
/usr/bin/chromium and chromium on PATH). To run them, install Chromium (as root:
apt-get install chromium) or point SPECREAD_CHROMIUM at a Chromium binary, then run:
    .venv/bin/python -m pytest tests/test_service_browser.py tests/test_review_browser.py
EOF
fi
exit "$status"
