#!/usr/bin/env bash
# Run nutbridge on its built-in simulated charge controller until Ctrl-C, installing it into .venv first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
exec .venv/bin/nutbridge --demo "$@"
