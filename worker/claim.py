"""Claiming rows with conditional updates: exactly one worker wins, the others give up.

No locks: each claim is an UPDATE whose WHERE clause holds what the claimer saw, and
the claim succeeded only if exactly one row changed ("another process got there first").
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import F
from django.utils import timezone

from webapp.runs.models import Run

# States in which a torchrun may exist for the run (a follower should be attached).
FOLLOWED_STATES = (Run.State.STARTING, Run.State.RUNNING, Run.State.STOPPING)


def claim_run(run_id: int, worker_name: str, host: str) -> bool:
    """queued -> starting for this worker (one more attempt); False if not queued any more."""
    now = timezone.now()
    return (
        Run.objects.filter(pk=run_id, state=Run.State.QUEUED).update(
            state=Run.State.STARTING,
            attempt=F("attempt") + 1,
            worker_name=worker_name,
            host=host,
            pid=None,
            exit_code=None,
            trainer_status="",
            heartbeat_at=now,
            started_at=now,
            finished_at=None,
            message="",
        )
        == 1
    )


def claim_reattach(
    run_id: int, worker_name: str, host: str, seen_worker: str, seen_heartbeat: datetime | None
) -> bool:
    """Take over following a run whose follower died, if nobody else did in the meantime.

    ``seen_worker``/``seen_heartbeat`` are the values the caller read: if another
    follower has written a heartbeat since (or took the run), this claim fails.
    """
    return (
        Run.objects.filter(
            pk=run_id,
            state__in=FOLLOWED_STATES,
            host=host,
            worker_name=seen_worker,
            heartbeat_at=seen_heartbeat,
        ).update(worker_name=worker_name, heartbeat_at=timezone.now())
        == 1
    )


def mark_lost(run_id: int, seen_heartbeat: datetime | None, message: str) -> bool:
    """Active run with the heartbeat the caller saw -> lost; False if it moved on."""
    return (
        Run.objects.filter(
            pk=run_id,
            state__in=(Run.State.PREPARING, *FOLLOWED_STATES),
            heartbeat_at=seen_heartbeat,
        ).update(state=Run.State.LOST, message=message, finished_at=timezone.now())
        == 1
    )
