#!/usr/bin/env bash
# Rebuild the packaged model folder src/specread/data/model/ from the challenge data:
#   priors.json  value/unit priors from the known training labels (real-dev images left out,
#                so benchmarks on real-dev stay honest);
#   ranker.txt   the candidate ranker, trained on real-dev with seed 0, pages read with the
#                accurate preset (detector side 960);
#   model.json   the manifest `specread train` writes: OCR settings, data fingerprints, hold-out
#                metrics, parameters (see specread.rank.model).
# Needs ../shared/data (see CONTRIBUTING.md). Deterministic: the same inputs (and the same cached OCR pages)
# give the same files byte for byte; the committed folder was built by this script.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${SPECREAD_DATA:-../shared/data}"
.venv/bin/specread train "$DATA/real-dev/labels.csv" --images "$DATA/real-dev/images" \
    --priors "$DATA/train_labels_known.csv" --priors-exclude "$DATA/real-dev/labels.csv" \
    --preset accurate -o src/specread/data/model --seed 0 --workers "${WORKERS:-2}"
