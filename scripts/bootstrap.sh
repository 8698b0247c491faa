#!/usr/bin/env bash
# Create .venv (if missing) and install the pinned requirements into it.
# Re-running is cheap: pip is skipped when requirements.txt and constraints.txt
# have not changed since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $PY"
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(cat requirements.txt constraints.txt | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "==> installing pinned requirements into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt -c constraints.txt
  rm -f .venv/.installed-*
  touch "$stamp"
fi
