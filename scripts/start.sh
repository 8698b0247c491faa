#!/usr/bin/env bash
# Start the whole app in the foreground: web (uvicorn, HTTP + websockets), a Celery
# worker and Celery beat, with their logs. Installs into .venv first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
mkdir -p var
.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py ensure_admin
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
echo
echo "  CPT Dashboard: http://$HOST:$PORT/   (log in as ${ADMIN_USERNAME:-admin};"
echo "  the password is ADMIN_PASSWORD, or the one printed above when the admin was created)"
echo
export HOST PORT
exec .venv/bin/honcho start -f Procfile
