"""Plain functions the web app calls to act on runs; they only touch rows and queues.

(Skeleton from the foundation: the worker issue fills in the behaviour; the
signatures are the contract the web views rely on.)
"""

from __future__ import annotations

from webapp.runs.models import Run


def queue_run(run: Run) -> None:
    """Queue a run (new, or a resume prepared by :func:`queue_resume`) for a GPU worker."""
    from worker.celery_app import app

    Run.objects.filter(pk=run.pk).update(state=Run.State.QUEUED)
    app.send_task("worker.run_training", args=[run.pk], queue="gpu")


def request_stop(run: Run) -> bool:
    """Ask the worker running ``run`` to stop it (SIGTERM -> checkpoint -> stopped)."""
    return bool(
        Run.objects.filter(pk=run.pk, state__in=Run.ACTIVE_STATES).update(stop_requested=True)
    )


def queue_resume(run: Run, checkpoint_path: str = "latest", total_steps: int | None = None) -> None:
    """Continue ``run`` in a new attempt from a checkpoint folder (relative) or the latest."""
    raise NotImplementedError
