#!/usr/bin/env bash
# The CUDA path on a GPU machine, as is: PYTHONPATH=. bash benchmarks/gpu_check.sh [--cpu-dry-run]
# Trains every family a few epochs on generated data (resume, eval), times the train step at batch
# 128/512/1024 in float32 and bfloat16, extrapolates a 90-epoch IMDB-size run; JSON to $OUT if set.
# Needs the base install only (no onnxruntime, no h5py); about 5-8 minutes on one GPU.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PYTHONPATH="${PYTHONPATH:-}:$(dirname "$here")"
PY="${PYTHON:-python}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
exec timeout --signal=INT "${GPU_CHECK_TIMEOUT:-480}" "$PY" "$here/gpu_check.py" "$@"
