#!/usr/bin/env bash
# Rebuild the two trained artifacts shipped in src/specread/data/ from the challenge data:
#   priors.json  value/unit priors from the 195k known training labels (real-dev images left out,
#                so benchmarks on real-dev stay honest);
#   ranker.txt   the candidate ranker, trained on real-dev with a fixed seed.
# Needs ../shared/data (see README). Deterministic: the same inputs give the same files.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${SPECREAD_DATA:-../shared/data}"
.venv/bin/specread priors "$DATA/train_labels_known.csv" -o src/specread/data/priors.json \
    --exclude "$DATA/real-dev/labels.csv"
.venv/bin/specread train "$DATA/real-dev/labels.csv" --images "$DATA/real-dev/images" \
    -o src/specread/data/ranker.txt --seed 0 --workers "${WORKERS:-2}"
