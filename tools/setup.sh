#!/usr/bin/env bash
# setup.sh — make this checkout ready to build, run and test lambdad.
#
# Idempotent and non-interactive; meant for a fresh Debian 12 (run as root,
# or with sudo available) as much as for a machine that already has
# everything. It does only what is missing and says what it did; when there
# is nothing to do it prints nothing.
#
#   1. Debian packages: installs the missing ones (checked with dpkg-query;
#      one `apt-get update` first, only if something must be installed).
#   2. Python: a virtualenv at .venv (created only if missing or broken) with
#      boto3, pytest, docker (docker-py) and awscli (the AWS CLI v1, .venv/bin/aws)
#      (pip installs only what cannot be imported). The venv
#      sees the base interpreter's site-packages, so a Python that already has
#      boto3 (e.g. a pyenv install) is reused; on Debian's PEP 668 Python it
#      is what makes pip usable at all.
#      The AWS CLI v2 goes to .venv/awscli-v2 (tools/install-awscli-v2.py).
#   3. Build: configures build/ (RelWithDebInfo) if needed and builds it with
#      make -j$(nproc).
#
# Environment:
#   LAMBDAD_BUILD_DIR   build directory (default <repo>/build)
#   LAMBDAD_PYTHON      interpreter for the venv (default python3 on PATH)
#   LAMBDAD_SKIP_BUILD=1  stop after packages and venv
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${LAMBDAD_BUILD_DIR:-$ROOT/build}"
VENV="$ROOT/.venv"

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- packages
PACKAGES=(
  build-essential cmake pkg-config
  libcivetweb-dev liburcu-dev libcurl4-openssl-dev zlib1g-dev libzip-dev libssl-dev libjansson-dev libexpat1-dev
  clang libclang-rt-14-dev
  python3 python3-venv python3-pip python3-dev
  nodejs curl zip debootstrap gnuplot-nox
)

# The Rust runtime e2e test builds the lambda_runtime crate (rust-version
# 1.84): a rustup toolchain (~/.cargo/bin) or any cargo on PATH is used as it
# is; without one, Debian 12's cargo-web/rustc-web (1.9x, kept current for
# the browsers' builds; plain `cargo` there is 1.63, too old) is installed.
if ! command -v cargo >/dev/null && [[ ! -x "$HOME/.cargo/bin/cargo" ]]; then
  PACKAGES+=(cargo-web)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]})); then
  SUDO=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "missing packages (${missing[*]}) and not root (no sudo)"
    SUDO=(sudo)
  fi
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq >/dev/null
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  say "installed ${#missing[@]} package(s)"
fi

# ---------------------------------------------------------------- python venv
venv_ok() { [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; }

if ! venv_ok; then
  PY="${LAMBDAD_PYTHON:-$(command -v python3 || true)}"
  [[ -n "$PY" ]] || die "python3 not found"
  [[ -e "$VENV" ]] && { say "removing broken venv $VENV"; rm -rf "$VENV"; }
  say "creating venv $VENV ($("$PY" --version 2>&1))"
  "$PY" -m venv --system-site-packages "$VENV"
  venv_ok || die "the new venv at $VENV does not work"
fi

need_pip=()
for mod in boto3 pytest docker awscli; do
  "$VENV/bin/python" -c "import $mod" >/dev/null 2>&1 || need_pip+=("$mod")
done
if ((${#need_pip[@]})); then
  say "pip installing into .venv: ${need_pip[*]}"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${need_pip[@]}"
fi

# AWS CLI v2 at .venv/awscli-v2/aws (the e2e tests of `aws logs tail`; PyPI's
# awscli is v1, which has no `logs tail`). Fetched with pip from PyPI's
# aws-cdk-asset-awscli-v2 (the official bundle); see tools/install-awscli-v2.py.
if [[ ! -x "$VENV/awscli-v2/aws" ]]; then
  say "installing the AWS CLI v2 into $VENV/awscli-v2"
  "$VENV/bin/python" "$ROOT/tools/install-awscli-v2.py" "$VENV/awscli-v2" "$VENV/bin/python" ||
    say "warning: the AWS CLI v2 could not be installed; the aws logs tail tests will skip"
fi

# ---------------------------------------------------------------- cargo
# tests/e2e/test_rust_runtime.py builds a function with the lambda_runtime
# crate (crates.io; Cargo.lock v4, rustc >= 1.85). It fails, not skips,
# without cargo; a Rust toolchain cannot be installed from here.
if command -v cargo >/dev/null 2>&1 || [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  :
else
  say "warning: cargo not found; tests/e2e/test_rust_runtime.py will fail (install Rust >= 1.85)"
fi

# ---------------------------------------------------------------- build
[[ "${LAMBDAD_SKIP_BUILD:-0}" == 1 ]] && exit 0

mkdir -p "$BUILD_DIR"
LOG="$BUILD_DIR/setup-build.log"
if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]] ||
   ! grep -q '^CMAKE_BUILD_TYPE:STRING=RelWithDebInfo$' "$BUILD_DIR/CMakeCache.txt"; then
  say "configuring $BUILD_DIR (RelWithDebInfo)"
  if ! cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$LOG" 2>&1; then
    cat "$LOG" >&2
    die "cmake configure failed"
  fi
fi
if ! cmake --build "$BUILD_DIR" -j"$(nproc)" >"$LOG" 2>&1; then
  cat "$LOG" >&2
  die "build failed (log: $LOG)"
fi
built=$(grep -c -E 'Building C object|Linking C ' "$LOG" || true)
if ((built > 0)); then
  say "built $BUILD_DIR ($built step(s); log: $LOG)"
fi
