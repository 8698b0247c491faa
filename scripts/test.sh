#!/usr/bin/env bash
# The whole test suite: lint + format check + pytest (slow end-to-end tests included)
# against the real Redis and PostgreSQL on localhost. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# The browser tests drive Debian's chromium; install it (and the compose validator) if missing.
if ! command -v chromium >/dev/null || ! command -v docker-compose >/dev/null; then
  echo "==> installing chromium and docker-compose with apt-get"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium docker-compose
fi
export DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
export REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
export DJANGO_SETTINGS_MODULE=webapp.settings
echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> pytest"
exec .venv/bin/python -m pytest "$@"
