"""Watch one running torchrun: ingest its events, beat the heartbeat, stop it, end the run.

One loop per run, in the Celery task that launched it (or that re-attached to it after
a worker restart). Each pass: ingest new events, push them to the browsers (throttled),
write the heartbeat, act on a stop request. When the process is gone: a last ingest,
then the final state from the trainer's status event and torchrun's exit status.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from trainer.fence import EXIT_SUPERSEDED, superseded
from webapp.runs import history
from webapp.runs.models import Run
from worker import events, launcher, recovery
from worker.claim import FOLLOWED_STATES
from worker.push import Pusher

log = logging.getLogger(__name__)

# Seconds after the grace period before SIGKILL: torchrun itself kills its ranks
# after --shutdown-timeout (= the grace period); this is the backstop.
KILL_MARGIN_SECONDS = 5
HISTORY_WARM_SECONDS = 60
"""How often the follower brings the run page's history cache up to date."""


@dataclass
class Handle:
    """The torchrun wrapper of a run: our child (``proc``) or one found by pid.

    ``attempt`` is the run's attempt this torchrun was launched as (None: unknown).
    """

    pid: int
    run_dir: Path
    proc: subprocess.Popen | None = None
    attempt: int | None = None

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None  # also reaps our child
        return launcher.is_alive(self.pid, self.run_dir)

    def exit_code(self) -> int | None:
        code = launcher.read_exit_code(self.run_dir)
        if code is None and self.proc is not None and self.proc.returncode:
            code = self.proc.returncode  # the wrapper itself was killed (negative signal)
        return code


def supervise(run_id: int, handle: Handle, worker_name: str, *, poll: float = 0.5) -> str:
    """Follow the run until its torchrun exits; returns the run's final state.

    Returns "" without touching the run if another worker took it over (the sweep
    marked it lost and it was re-queued), or a newer attempt did: then this torchrun is
    killed, because a new attempt is about to write to the same run directory.
    """
    grace = settings.RUN_STOP_GRACE_SECONDS
    beat_every = settings.RUN_HEARTBEAT_SECONDS
    events_path = handle.run_dir / launcher.EVENTS_FILE
    pusher = Pusher(run_id, handle.run_dir)
    stop_sent_at: float | None = None
    killed = False
    last_beat = last_warm = time.monotonic()
    while True:
        running = handle.alive()
        pusher.add(events.drain(run_id, events_path))
        now = time.monotonic()
        if now - last_beat >= beat_every:
            last_beat = now
            if not _beat(run_id, worker_name, handle.attempt):
                log.warning("run %s was taken from %s; killing its torchrun", run_id, worker_name)
                launcher.kill_tree(handle.pid)
                return ""
        if not running:
            break
        if stop_sent_at is None and _stop_requested(run_id):
            log.info("run %s: stop requested, SIGTERM to torchrun group %s", run_id, handle.pid)
            Run.objects.filter(pk=run_id, state__in=FOLLOWED_STATES).update(
                state=Run.State.STOPPING
            )
            launcher.signal_group(handle.pid, signal.SIGTERM)
            stop_sent_at = now
        elif (
            stop_sent_at is not None
            and not killed
            and now - stop_sent_at > grace + KILL_MARGIN_SECONDS
        ):
            log.warning("run %s: still alive %ss after SIGTERM, SIGKILL", run_id, grace)
            launcher.kill_tree(handle.pid)
            killed = True
        pusher.maybe_push()
        if now - last_warm >= HISTORY_WARM_SECONDS:
            last_warm = now
            _warm_history(run_id)
        time.sleep(poll)
    # The trainer may have written its last lines as it exited.
    pusher.add(events.drain(run_id, events_path))
    state = finish(run_id, worker_name, handle.exit_code(), killed=killed, attempt=handle.attempt)
    pusher.push(force=True)
    if state == Run.State.PREEMPTED:
        log.info("run %s preempted: %s", run_id, recovery.resume_if_preempted(run_id))
    return state


def _warm_history(run_id: int) -> None:
    """Keep the run page's history cache warm (best effort: a failure only costs speed)."""
    try:
        history.warm_cache(run_id)
    except Exception:  # noqa: BLE001 - never let the cache stop the follower
        log.warning("run %s: could not warm the history cache", run_id, exc_info=True)


def _beat(run_id: int, worker_name: str, attempt: int | None = None) -> bool:
    """Write the heartbeat; False when the run is no longer ours to follow (taken by
    another worker, or by a newer attempt, possibly this same worker's)."""
    holder = {"attempt": attempt} if attempt is not None else {}
    return bool(
        Run.objects.filter(
            pk=run_id, worker_name=worker_name, state__in=FOLLOWED_STATES, **holder
        ).update(heartbeat_at=timezone.now())
    )


def _stop_requested(run_id: int) -> bool:
    return Run.objects.filter(pk=run_id, stop_requested=True).exists()


def final_state(
    run: Run, exit_code: int | None, *, killed: bool, attempt: int | None = None
) -> tuple[str, str]:
    """(state, message) for a run whose torchrun has exited.

    First, a torchrun superseded by a newer attempt (the trainer's exit code
    ``EXIT_SUPERSEDED``, 76, or, as torchrun turns it into 1, ``attempt.json`` naming an
    attempt newer than ``attempt``, the one this torchrun was launched as) gives state
    "": the run belongs to the newer attempt and nothing may be recorded for this one.
    Then the trainer's last status event decides; a preempted run the user asked to stop
    is ``stopped``. Without a final status event the exit status does: 0 is completed,
    anything else failed (with the end of train.log, where the traceback is).
    """
    newer = superseded(run.run_dir, attempt)
    if exit_code == EXIT_SUPERSEDED or newer is not None:
        by = f"attempt {newer}" if newer is not None else "a newer attempt"
        return "", f"superseded by {by}: this attempt's end is not recorded"
    status = run.trainer_status
    message = run.message
    if status == "completed":
        return Run.State.COMPLETED, message or "completed"
    if status == "preempted":
        if run.stop_requested:
            return Run.State.STOPPED, message or "stopped; checkpoint saved"
        return Run.State.PREEMPTED, message or "preempted (SIGTERM); checkpoint saved"
    if run.stop_requested:
        why = "killed after the grace period" if killed else "ended"
        return Run.State.STOPPED, f"stopped ({why}, no checkpoint from the stop)"
    if status != "failed" and exit_code == 0:
        return Run.State.COMPLETED, message or "completed"
    tail = "\n".join(launcher.log_tail(run.run_dir, 30))
    head = message if status == "failed" and message else f"torchrun exited with status {exit_code}"
    return Run.State.FAILED, f"{head}\n--- last lines of train.log ---\n{tail}"


def finish(
    run_id: int,
    worker_name: str,
    exit_code: int | None,
    *,
    killed: bool = False,
    attempt: int | None = None,
) -> str:
    """Record the end of the run (only if this worker still holds it, as ``attempt`` when
    given: the same worker may have claimed a newer attempt of the run meanwhile)."""
    run = Run.objects.get(pk=run_id)
    state, message = final_state(run, exit_code, killed=killed, attempt=attempt)
    if not state:
        log.warning("run %s: attempt %s ended: %s", run_id, attempt, message)
        return ""
    holder = {"attempt": attempt} if attempt is not None else {}
    updated = Run.objects.filter(
        pk=run_id, worker_name=worker_name, state__in=FOLLOWED_STATES, **holder
    ).update(state=state, message=message, exit_code=exit_code, finished_at=timezone.now())
    if not updated:
        return ""
    log.info("run %s ended: %s (exit status %s)", run_id, state, exit_code)
    return state
