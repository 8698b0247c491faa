"""Runs whose follower went away: re-attach, mark lost, auto-resume, reap orphans.

- A worker that restarts while its torchrun still runs (own session, so it survived)
  re-attaches to it instead of starting a second one (:func:`on_worker_start`).
- The periodic sweep (Celery beat) finds active runs whose heartbeat is older than
  ``RUN_LOST_AFTER_SECONDS``. If the run's torchrun is alive on the sweeping worker's
  host, that worker re-attaches; otherwise the run is lost, and re-queued from its latest
  checkpoint when its config asks for auto-resume and restarts remain.
- A torchrun alive on this host for a run that is no longer followed here (lost and
  resumed elsewhere, say) is killed: two trainers must never share a run directory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from webapp.runs.models import Run
from worker import hosts, launcher
from worker.claim import FOLLOWED_STATES, mark_lost
from worker.control import ControlError, queue_resume, queue_run

log = logging.getLogger(__name__)

# send_follow(run_id, seen_worker, seen_heartbeat): queue a re-attach on this worker.
SendFollow = Callable[[int, str, object], None]


def auto_resume(run: Run, from_state: str = Run.State.LOST) -> str:
    """Re-queue a lost (or preempted) run from its latest checkpoint if its config allows.

    Returns what was done. ``from_state`` is the state the run must still be in, so a
    sweep and a follower never both count the same restart.
    """
    ckpt = (run.config or {}).get("checkpoint") or {}
    if not ckpt.get("auto_resume"):
        return from_state
    max_restarts = int(ckpt.get("max_restarts", 3))
    counted = Run.objects.filter(
        pk=run.pk, state=from_state, restarts=run.restarts, restarts__lt=max_restarts
    ).update(restarts=F("restarts") + 1)
    if not counted:
        return f"{from_state} (no restarts left)"
    try:
        queue_resume(run, "latest")
        return "resumed"
    except ControlError:
        # Lost before its first checkpoint: start again from the beginning.
        Run.objects.filter(pk=run.pk, state=from_state).update(
            resume_from="",
            stop_requested=False,
            message=f"{from_state} before a checkpoint; restarting",
        )
        queue_run(run)
        return "restarted"


def resume_if_preempted(run_id: int) -> str:
    """A run preempted from outside (a reclaimed spot host, a scheduler's SIGTERM) saved a
    checkpoint as it stopped; with ``checkpoint.auto_resume`` it continues from there.
    A run the user stopped ends ``stopped``, never ``preempted``, so it stays stopped."""
    run = Run.objects.filter(pk=run_id, state=Run.State.PREEMPTED).first()
    return auto_resume(run, Run.State.PREEMPTED) if run else ""


def sweep(send_follow: SendFollow | None) -> dict[str, list[int]]:
    """One pass over stale runs; ``send_follow`` is None outside a worker (no re-attach)."""
    limit = timezone.now() - timedelta(seconds=settings.RUN_LOST_AFTER_SECONDS)
    here = hosts.host_name()
    done: dict[str, list[int]] = {"reattached": [], "lost": [], "resumed": []}
    stale = Run.objects.filter(state__in=(Run.State.PREPARING, *FOLLOWED_STATES)).filter(
        Q(heartbeat_at__lt=limit) | Q(heartbeat_at__isnull=True)
    )
    for run in stale:
        alive_here = run.host == here and launcher.is_alive(run.pid, run.run_dir)
        if alive_here and send_follow is not None and run.state in FOLLOWED_STATES:
            send_follow(run.pk, run.worker_name, run.heartbeat_at)
            done["reattached"].append(run.pk)
            continue
        seen = run.heartbeat_at.isoformat() if run.heartbeat_at else "never"
        if not mark_lost(run.pk, run.heartbeat_at, f"lost: no heartbeat since {seen}"):
            continue
        if alive_here:
            launcher.kill_tree(run.pid)
        done["lost"].append(run.pk)
        run.refresh_from_db()
        outcome = auto_resume(run)
        log.warning("run %s lost (worker %s on %s): %s", run.pk, run.worker_name, run.host, outcome)
        if outcome in ("resumed", "restarted"):
            done["resumed"].append(run.pk)
    return done


def reap_orphans() -> list[int]:
    """Kill torchruns alive on this host for runs nobody should be following here.

    Wrappers are found in /proc (see :func:`launcher.find_wrappers`), so a torchrun is
    found even when its run row was since claimed by a new attempt on another host.
    """
    here = hosts.host_name()
    killed = []
    for pid, run_dir in launcher.find_wrappers(Path(settings.RUNS_ROOT)).items():
        run_id = int(run_dir.name) if run_dir.name.isdigit() else None
        followed = Run.objects.filter(
            pk=run_id, host=here, pid=pid, state__in=FOLLOWED_STATES
        ).exists()
        # A worker launching a new attempt spawns while the run is preparing and records
        # the pid just after; the launch itself kills any older torchrun of that run.
        launching = Run.objects.filter(pk=run_id, state=Run.State.PREPARING).exists()
        if not followed and not launching:
            log.warning("killing orphan torchrun %s of %s", pid, run_dir)
            launcher.kill_tree(pid)
            if run_id is not None:
                killed.append(run_id)
    Run.objects.filter(host=here, pid__isnull=False).exclude(state__in=FOLLOWED_STATES).update(
        pid=None
    )
    return killed


def on_worker_start(worker_name: str, send_follow: SendFollow) -> list[int]:
    """Re-attach to the runs this worker followed before it restarted; reap orphans."""
    reap_orphans()
    mine = Run.objects.filter(
        host=hosts.host_name(), worker_name=worker_name, state__in=FOLLOWED_STATES
    ).exclude(pid__isnull=True)
    sent = []
    for run in mine:
        send_follow(run.pk, run.worker_name, run.heartbeat_at)
        sent.append(run.pk)
    return sent
