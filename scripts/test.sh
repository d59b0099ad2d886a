#!/usr/bin/env bash
# Set up specread with its test dependencies in .venv, then lint and run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev,serve,ray,vlm,eda]"
.venv/bin/ruff check src tests benchmarks
.venv/bin/python -m pytest "$@"
