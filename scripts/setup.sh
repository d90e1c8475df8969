#!/usr/bin/env bash
# Set up a fresh machine: Fashion-MNIST from Debian (when apt is available), a virtual
# environment in .venv with PyTorch and this project. Safe to run again; it skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null \
    || echo "warning: could not install dataset-fashion-mnist; the prepare stage will try torchvision's download" >&2
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Pinned to the versions this project is tested with (and that a pip constraint here allows).
.venv/bin/pip install -q --disable-pip-version-check "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/pip install -q --disable-pip-version-check -e ".[test]"
