#!/usr/bin/env bash
# Download (here, with PyPI reachable) the pure-Python wheels scripts/gpu_check.sh installs on a bare GPU
# machine, into wheels/ (git-ignored): what the CUDA tests and the speed benchmark import beyond torch.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p wheels
.venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d wheels \
  "ruamel.yaml>=0.17" "torch-fidelity==$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("torch-fidelity"))')"
ls -la wheels
