#!/usr/bin/env bash
# Set up and run the test suite (unit tests, then the end-to-end DVC/MLflow tests); extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
python -m pytest "$@"
