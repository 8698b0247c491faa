"""Shared set-up for benchmarks that need Django on their own PostgreSQL database."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG = "postgres://postgres@127.0.0.1:5432"


def ensure_database(name: str) -> None:
    """Create the bench database if it does not exist (outside any transaction)."""
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(db: str, runs_root: Path, *, migrate: bool = False) -> None:
    """Point Django at database ``db`` and ``runs_root``; optionally migrate it."""
    os.environ["DATABASE_URL"] = f"{PG}/{db}"
    os.environ["RUNS_ROOT"] = str(runs_root)
    os.environ["DJANGO_SETTINGS_MODULE"] = "webapp.settings"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
