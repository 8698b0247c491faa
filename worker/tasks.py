"""Celery tasks: thin wrappers over the plain modules of this package."""

from __future__ import annotations

from worker.celery_app import app


@app.task(name="worker.ping")
def ping() -> str:
    """A round trip through the broker, used by health checks and tests."""
    return "pong"
