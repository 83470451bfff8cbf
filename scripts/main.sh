#!/usr/bin/env bash
# Set up (if needed), then run cnnlab's main job: the quick study - LeNet-5 vs a
# same-size MLP on the real Fashion-MNIST (Debian's package), 2 epochs, seeds until its
# claim is decided (looks at 3, 5, 8 and 12 seeds) - into out/quick-fashion, ending with
# the verdict and out/quick-fashion/report.html.
# Re-running skips the finished runs and re-writes the report.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
exec .venv/bin/cnnlab run studies/quick-fashion.toml --out out/quick-fashion --until-decided "$@"
