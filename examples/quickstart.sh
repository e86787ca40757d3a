#!/usr/bin/env bash
# The README's first command: install what is needed, then run the demo containers from examples/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
exec .venv/bin/python examples/demo.py
