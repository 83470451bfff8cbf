#!/usr/bin/env bash
# Set up (if needed), lint, and run the whole test suite. Extra arguments go to pytest
# (-n 0 for one process, -m "not slow" for the fast tier).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CNNLAB_SETUP_TESTS=1 source scripts/setup.sh
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/lint-imports --no-cache  # the layers of DESIGN.md (pyproject.toml [tool.importlinter])
# One test process per core (pytest-xdist), each file's tests in one of them: one Ray
# instance at a time, and the docs' examples after the README's in one folder.
# `bash scripts/test.sh -m "not slow"` is the fast tier for the edit loop.
exec .venv/bin/python -m pytest -n auto --dist loadfile "$@"
