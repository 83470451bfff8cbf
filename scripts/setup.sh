#!/usr/bin/env bash
# Idempotent set-up, sourced by scripts/main.sh and scripts/test.sh:
# a virtual environment in .venv with cnnlab and its pinned dependencies, plus
# the Debian packages the project uses where apt is available (real
# Fashion-MNIST). Re-runs are fast: pip runs only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PYTHON" >&2
  "$PYTHON" -m venv .venv
fi

# The tests also need the optional extras (the Ray executor, TensorBoard, MLflow,
# pandas, Optuna); the main job does not (a set-up for the tests serves the main job too).
extras=test
[ "${CNNLAB_SETUP_TESTS:-0}" = 1 ] && extras=test,ray,interop,search
stamp=.venv/.cnnlab-setup-stamp
hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
want="$hash $extras"
[ "$(cat "$stamp" 2>/dev/null)" = "$hash test,ray,interop,search" ] && want="$hash test,ray,interop,search"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing cnnlab and its dependencies into .venv (first time: a few minutes)" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[$extras]"
  # timm: a model zoo the tests train through the API and the CLI; --no-deps keeps the
  # pinned torch (its own requirements would pull another one).
  [ "${CNNLAB_SETUP_TESTS:-0}" = 1 ] && .venv/bin/python -m pip install --quiet --no-deps "timm==1.0.31"
  echo "$want" > "$stamp"
fi

# Debian packages: real Fashion-MNIST (the main job's dataset), the fonts digits-wild
# prints its digits in (scripts/font-packages.txt); with CNNLAB_SETUP_TESTS=1 also
# Chromium, which the report's browser test drives.
apt_packages=()
[ -d /usr/share/datasets/fashion-mnist ] || apt_packages+=(dataset-fashion-mnist)
fonts=$(grep -v '^#' scripts/font-packages.txt)
if command -v dpkg-query >/dev/null; then
  # dpkg-query exits 1 when a package is unknown to it (on a fresh machine, most of
  # them): with pipefail that would end the whole set-up here, silently.
  # shellcheck disable=SC2086  # one package name a word
  installed=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' $fonts 2>/dev/null | awk '$1 == "ii" {print $2}' || true)
  for package in $fonts; do
    grep -qx "$package" <<<"$installed" || apt_packages+=("$package")
  done
fi
if [ "${CNNLAB_SETUP_TESTS:-0}" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  apt_packages+=(chromium)
fi
if [ ${#apt_packages[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup: apt-get install ${apt_packages[*]}" >&2
    apt-get update -qq >/dev/null && apt-get install -y -qq "${apt_packages[@]}" >/dev/null \
      || echo "setup: could not install ${apt_packages[*]}; tests that need them will skip" >&2
  else
    echo "setup: ${apt_packages[*]} not installed (needs apt as root); tests that need them will skip" >&2
  fi
fi
