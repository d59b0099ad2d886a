#!/usr/bin/env bash
# Set up specread in .venv, then run the main job on a small generated example:
# generate labelled images -> predict -> check -> evaluate.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
export SPECREAD_CACHE="${SPECREAD_CACHE:-$PWD/.cache/ocr}"
rm -rf example
.venv/bin/specread example example --n-images 12
.venv/bin/specread predict example/input.csv --images example/images --output example/predictions.csv --workers 2
.venv/bin/specread check example/predictions.csv --input example/input.csv
.venv/bin/specread evaluate example/predictions.csv example/gold.csv
