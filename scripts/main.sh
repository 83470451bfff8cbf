#!/usr/bin/env bash
# Set up (if needed), then run cnnlab's main job: the quick study - LeNet-5 vs a
# same-size MLP on the real Fashion-MNIST (Debian's package), 3 seeds x 2 epochs -
# into out/quick-fashion, ending with out/quick-fashion/report.html.
# Re-running skips the finished runs and re-writes the report.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
exec .venv/bin/cnnlab run studies/quick-fashion.toml --out out/quick-fashion "$@"
