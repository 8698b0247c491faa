"""Celery tasks (dataset_tasks): thin wrappers over plain modules."""

from __future__ import annotations

import logging

from worker.celery_app import app

log = logging.getLogger(__name__)


@app.task(name="worker.validate_dataset", acks_late=True)
def validate_dataset_task(dataset_id: int) -> str:
    """Hash, validate and profile a finished upload (see :mod:`worker.datasets`)."""
    from worker.datasets import validate_dataset

    return validate_dataset(dataset_id)


@app.task(name="worker.expire_uploads", ignore_result=True)
def expire_uploads_task() -> list[int]:
    """Delete uploads abandoned for UPLOAD_ABANDON_HOURS (Celery beat, hourly)."""
    from webapp.datasets.cleanup import expire_abandoned_uploads

    expired = expire_abandoned_uploads()
    if expired:
        log.info("expired abandoned uploads %s", expired)
    return expired
