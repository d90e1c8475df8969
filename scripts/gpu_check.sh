#!/usr/bin/env bash
# The GPU smoke run on any CUDA machine: the CUDA tests, the speed benchmark on the GPU and, where DVC and
# MLflow are installed, a two-schedule quick study; writes one JSON of what ran and what passed.
#
#   bash scripts/gpu_check.sh [out.json]        # default: gpu_check.json in the project root
#
# It needs python3 with a CUDA build of torch, torchvision, pytest and pyyaml (a bare GPU machine of this
# workplace has them). What it lacks it takes from wheels/ when that folder is there (no network needed):
# `bash scripts/gpu_wheels.sh` fills it here (ruamel.yaml, torch-fidelity, ...), and the folder travels to
# the GPU machine with the working tree. The Inception weights for the feature tests come from $TORCH_HOME,
# or from torch-home/ in the project (see docs/operations.md: too large for one transfer, they go in parts).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu_check.json}
PY=${PYTHON:-python3}
if [ -d wheels ] && ls wheels/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --disable-pip-version-check wheels/*.whl || echo "warning: wheels/ did not install" >&2
fi
if [ -z "${TORCH_HOME:-}" ] && [ -d torch-home ]; then
  parts=(torch-home/weights.part*)
  target=torch-home/hub/checkpoints/weights-inception-2015-12-05-6726825d.pth
  if [ -e "${parts[0]}" ] && [ ! -f "$target" ]; then
    mkdir -p "$(dirname "$target")" && cat "${parts[@]}" > "$target"
  fi
  export TORCH_HOME="$PWD/torch-home"
fi
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$PY" scripts/gpu_check.py "$out"
