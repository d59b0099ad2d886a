#!/usr/bin/env bash
# The GPU path measured in one short call (issue #22): throughput, CPU seconds and F1 of the `gpu`
# preset on a labelled real-image set, as JSON on stdout (benchmarks/throughput.py), with the
# stage profile of one worker and the machine it ran on.
#
#   pip install -e '.[gpu]'            # onnxruntime-gpu: its CUDA provider is what the preset runs on
#   DATA=../shared/data/real-dev WORKERS=8 SAMPLE=400 bash benchmarks/gpu.sh > gpu.json
#
# It stops at once, before any image is read, where onnxruntime has no CUDA provider: a CPU run
# of the gpu preset is not a GPU figure. Each worker process holds one CUDA session per model,
# so several workers keep one GPU busy while others decode and post-process on the CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
DATA=${DATA:-../shared/data/real-dev}
WORKERS=${WORKERS:-$(( $(nproc) < 8 ? $(nproc) : 8 ))}
SAMPLE=${SAMPLE:-}
PRESETS=${PRESETS:-gpu}

"$PYTHON" - <<'PY'
import sys

from specread.errors import DeviceUnavailableError
from specread.ocr.devices import resolve_device

try:
    resolve_device("cuda")
except DeviceUnavailableError as exc:
    sys.exit(f"benchmarks/gpu.sh: {exc}")
PY

"$PYTHON" -m benchmarks.throughput --data "$DATA" ${SAMPLE:+--sample "$SAMPLE"} --presets "$PRESETS" \
    --engines local --workers "$WORKERS" --retry-side 1280 --scorer ranker --profile 64
