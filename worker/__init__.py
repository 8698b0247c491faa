"""The bridge between web and trainer: Celery app, tasks and the plain modules they call."""

from worker.celery_app import app as celery_app

__all__ = ["celery_app"]
