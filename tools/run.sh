#!/usr/bin/env bash
# run.sh — start lambdad from this checkout.
#
#   tools/run.sh [lambdad flags...]
#
# Runs tools/setup.sh first (packages, .venv, build; quiet when there is
# nothing to do), then execs build/lambdad with the given flags. With no
# flags lambdad uses its defaults: 127.0.0.1:4566, the persistent data dir
# ~/.local/share/lambdad, the subprocess executor. Every flag also has an
# environment variable (see README.md or `tools/run.sh --help`).
#
# The venv's bin directory goes first on PATH so that functions run by the
# subprocess executor get the venv's python3 (which has boto3, as Lambda's
# Python runtimes do).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${LAMBDAD_BUILD_DIR:-$ROOT/build}"

"$ROOT/tools/setup.sh"

export PATH="$ROOT/.venv/bin:$PATH"
exec "$BUILD_DIR/lambdad" "$@"
