"""Celery tasks (checkpoint_tasks): thin wrappers over ``worker.checkpoints``; queue ``cpu``."""

from __future__ import annotations

from worker.celery_app import app


@app.task(name="worker.export_checkpoint", acks_late=True)
def export_checkpoint_task(checkpoint_id: int) -> bool:
    """Export a checkpoint to Hugging Face format (see :func:`worker.checkpoints.export_checkpoint`)."""
    from worker.checkpoints import export_checkpoint

    return export_checkpoint(checkpoint_id)


@app.task(name="worker.generate_sample", acks_late=True)
def generate_sample_task(sample_id: int) -> bool:
    """Generate text from a checkpoint (see :func:`worker.checkpoints.generate_sample`)."""
    from worker.checkpoints import generate_sample

    return generate_sample(sample_id)


@app.task(name="worker.delete_checkpoint", acks_late=True)
def delete_checkpoint_task(checkpoint_id: int) -> int:
    """Remove a deleted checkpoint's files (see :func:`worker.checkpoints.delete_checkpoint`)."""
    from worker.checkpoints import delete_checkpoint

    return delete_checkpoint(checkpoint_id)
