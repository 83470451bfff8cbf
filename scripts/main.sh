#!/usr/bin/env bash
# Set up (if needed), then run cnnlab's main job on the embedded default dataset.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
mkdir -p out
exec .venv/bin/cnnlab data show fashion-mnist --out out/fashion-mnist-samples.png "$@"
