#!/usr/bin/env bash
# Create .venv and install scaling-optuna with its test tools (and, as root with apt, Debian's Fashion-MNIST).
# Usage: bash scripts/setup.sh            (add --browser to install Chromium for the report's browser test)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip() { .venv/bin/python -m pip "$@"; }
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
  # The pinned pair is the one known to import together on the reference machine;
  # elsewhere any matching torch/torchvision pair works.
  pip install "torch==2.14.1" "torchvision==0.29.1" || pip install torch torchvision
fi
pip install -e '.[test]'
# studies/fashion-mnist.toml reads Debian's copy of Fashion-MNIST (or downloads it where there is a network).
if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; } \
    || echo "note: could not install Debian's dataset-fashion-mnist; studies/fashion-mnist.toml will download Fashion-MNIST" >&2
fi
if [ "${1:-}" = "--browser" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: install Chromium (Debian package 'chromium') to run the report's browser test" >&2
  fi
fi
