#!/usr/bin/env bash
# Set up and run the whole study: `dvc repro` with params.yaml; extra arguments go to dvc repro.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
dvc repro "$@"
