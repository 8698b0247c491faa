"""Celery tasks (dataset_tasks): thin wrappers over plain modules."""

from __future__ import annotations

from worker.celery_app import app


@app.task(name="worker.validate_dataset", acks_late=True)
def validate_dataset_task(dataset_id: int) -> str:
    """Hash, validate and profile a finished upload (see :mod:`worker.datasets`)."""
    from worker.datasets import validate_dataset

    return validate_dataset(dataset_id)
