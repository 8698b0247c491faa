"""Celery tasks (run_tasks): thin wrappers over plain modules."""

from __future__ import annotations

from worker.celery_app import app  # noqa: F401
