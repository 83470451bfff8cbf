#!/usr/bin/env bash
# Set up (if needed), then run cnnlab's main job: LeNet-5 on the real
# Fashion-MNIST (Debian's package), 3 epochs, into out/main-lenet5-fashion.
# Re-running continues or re-reports the same run instead of starting over.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
exec .venv/bin/cnnlab train --dataset fashion-mnist --model lenet5 --epochs 3 --batch-size 128 \
  --out out/main-lenet5-fashion --resume "$@"
