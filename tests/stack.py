"""Start real services for tests: a Celery worker, uvicorn, beat, on the test database.

Test processes started here see the same database as the test (pytest-django's
test database; use the ``transactional_db`` fixture so they see committed rows)
and the same Redis (``REDIS_URL``). Every process is killed at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


def service_env(**extra: str) -> dict[str, str]:
    """Environment for a child process: the test database and roots of this test."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("postgresql"):
        url = f"postgres://{db.get('USER') or 'postgres'}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
    else:
        url = f"sqlite:///{db['NAME']}"
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        REDIS_URL=settings.REDIS_URL,
        CELERY_BROKER_URL=settings.REDIS_URL,
        CELERY_RESULT_BACKEND=settings.REDIS_URL,
        RUNS_ROOT=str(settings.RUNS_ROOT),
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        PREPARED_ROOT=str(settings.PREPARED_ROOT),
        DJANGO_SETTINGS_MODULE="webapp.settings",
        PYTHONUNBUFFERED="1",
    )
    env.pop("TEST_DATABASE_NAME", None)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def process(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen]:
    """Run ``args`` in its own session with output to ``log``; kill the whole group at exit."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env or service_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=15)
                break
            except subprocess.TimeoutExpired:
                continue


def celery_worker_args(
    name: str = "test", queues: str = "gpu,cpu", concurrency: int = 2
) -> list[str]:
    """The same worker command as the Procfile, with a unique node name."""
    return [
        sys.executable, "-m", "celery", "-A", "worker", "worker",
        "-Q", queues, "--concurrency", str(concurrency), "--loglevel", "INFO",
        "-n", f"{name}@%h", "--without-gossip", "--without-mingle",
    ]  # fmt: skip


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
