"""Plain functions the web app calls to act on runs; they only touch rows and queues.

The web views call these three functions (the contract in docs/CONTRACTS.md); the
worker does the rest. Every value that came from a browser (checkpoint path, steps) is
checked here against the server's own records before it is stored.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from trainer.config import ConfigError, parse_config
from webapp.runs.models import Checkpoint, Run

# Ended runs that hold checkpoints a new attempt can start from.
RESUMABLE_STATES = (
    Run.State.STOPPED,
    Run.State.COMPLETED,
    Run.State.PREEMPTED,
    Run.State.FAILED,
    Run.State.LOST,
)
CHECKPOINT_DIR = re.compile(r"^checkpoints/step-\d{6,}$")


class ControlError(ValueError):
    """A request the run's state or the given values do not allow; ``field`` names the input."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def queue_run(run: Run) -> None:
    """Queue a run (new, or a resume prepared by :func:`queue_resume`) for a GPU worker.

    The task is sent after the surrounding transaction commits, so the worker always
    finds the row queued; a worker that finds it claimed by another gives up.
    """
    from worker.celery_app import app

    Run.objects.filter(pk=run.pk).update(state=Run.State.QUEUED)
    run.state = Run.State.QUEUED
    transaction.on_commit(lambda: app.send_task("worker.run_training", args=[run.pk], queue="gpu"))


def request_stop(run: Run) -> bool:
    """Ask the worker running ``run`` to stop it (SIGTERM -> checkpoint -> stopped).

    A run still waiting in the queue is stopped at once (no worker holds it yet; the
    queued task finds it no longer queued and gives up). False if the run is not active.
    """
    if Run.objects.filter(pk=run.pk, state=Run.State.QUEUED).update(
        state=Run.State.STOPPED, stop_requested=True, finished_at=timezone.now()
    ):
        return True
    return bool(
        Run.objects.filter(pk=run.pk, state__in=Run.ACTIVE_STATES).update(stop_requested=True)
    )


def committed_checkpoints(run: Run) -> list[tuple[int, str]]:
    """(step, relative folder) of checkpoints on disk whose ``.metadata`` exists, by step."""
    root = run.run_dir / "checkpoints"
    found = []
    if root.is_dir():
        for folder in root.iterdir():
            rel = f"checkpoints/{folder.name}"
            if CHECKPOINT_DIR.match(rel) and (folder / ".metadata").is_file():
                found.append((int(folder.name.split("-")[1]), rel))
    return sorted(found)


def resolve_checkpoint(run: Run, checkpoint_path: str) -> tuple[int, str]:
    """(step, folder) for "latest" or a folder of this run; ControlError if unusable."""
    on_disk = committed_checkpoints(run)
    # Rows flagged deleted are never resumed from: folders a resume abandoned (still on
    # disk) and checkpoints a user deleted (see webapp.runs.checkpoint_views.delete).
    deleted = set(Checkpoint.objects.filter(run=run, deleted=True).values_list("path", flat=True))
    if checkpoint_path in ("", "latest"):
        usable = [c for c in on_disk if c[1] not in deleted]
        if not usable:
            raise ControlError("checkpoint", "this run has no committed checkpoint to resume from")
        return usable[-1]
    path = checkpoint_path.strip().rstrip("/")
    if not CHECKPOINT_DIR.match(path):
        raise ControlError("checkpoint", "expected a folder like checkpoints/step-000200")
    if path in deleted:
        raise ControlError("checkpoint", f"{path} was deleted")
    for step, rel in on_disk:
        if rel == path:
            return step, rel
    raise ControlError("checkpoint", f"{path} is not a committed checkpoint of this run")


def queue_resume(run: Run, checkpoint_path: str = "latest", total_steps: int | None = None) -> None:
    """Continue ``run`` in a new attempt from a checkpoint folder (relative) or the latest.

    Same run id: the new attempt appends to the same events.jsonl, so steps and the
    chart continue. ``total_steps`` (optional) replaces the schedule's length. The
    attempt counter goes up when a worker claims the run. Raises :class:`ControlError`.
    """
    run.refresh_from_db()
    if run.state not in RESUMABLE_STATES:
        raise ControlError("state", f"a {run.state} run cannot be resumed")
    step, folder = resolve_checkpoint(run, checkpoint_path)
    config = dict(run.config)
    if total_steps is not None:
        if isinstance(total_steps, bool) or not isinstance(total_steps, int):
            raise ControlError("total_steps", "must be a whole number")
        if total_steps <= step:
            raise ControlError("total_steps", f"must be more than the checkpoint's step {step}")
        schedule = dict(config.get("schedule") or {})
        schedule.update(total_steps=total_steps, total_tokens=None)
        config["schedule"] = schedule
        try:
            parse_config(config)
        except ConfigError as exc:
            raise ControlError("total_steps", str(exc)) from None
    with transaction.atomic():
        updated = Run.objects.filter(pk=run.pk, state__in=RESUMABLE_STATES).update(
            config=config,
            total_steps=total_steps if total_steps is not None else run.total_steps,
            resume_from=folder,
            stop_requested=False,
            message=f"resuming from {folder}",
        )
        if not updated:
            raise ControlError("state", "the run changed state; reload and try again")
        queue_run(run)
    run.refresh_from_db()


def resume_step(folder: str) -> int:
    """The step a checkpoint folder name encodes (checkpoints/step-000200 -> 200)."""
    return int(Path(folder).name.split("-")[1])
