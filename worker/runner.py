"""Take a claimed run from queued to a running torchrun, then follow it to its end."""

from __future__ import annotations

import logging

from django.conf import settings
from django.utils import timezone

from trainer.config import ConfigError, check_paths, dump_config, parse_config
from trainer.fence import write_attempt
from webapp.runs.models import Checkpoint, Metric, Run
from worker import hosts, launcher
from worker.claim import FOLLOWED_STATES, claim_reattach
from worker.control import resume_step
from worker.preparation import PreparationError, resolve_corpora
from worker.push import push_progress
from worker.supervisor import Handle, supervise

log = logging.getLogger(__name__)


def _end(run_id: int, worker_name: str, state: str, message: str) -> str:
    """End a run this worker holds that never got a torchrun (failed or stopped early)."""
    Run.objects.filter(
        pk=run_id, worker_name=worker_name, state__in=(Run.State.PREPARING, *FOLLOWED_STATES)
    ).update(state=state, message=message[:10_000], finished_at=timezone.now())
    push_progress(run_id)
    return state


def abandon_after(run: Run, step: int) -> None:
    """A new attempt continues from ``step``: what the previous timeline recorded after it
    goes (metrics deleted, later checkpoints flagged), so the chart continues cleanly."""
    Metric.objects.filter(run=run, step__gt=step).delete()
    Checkpoint.objects.filter(run=run, step__gt=step).update(deleted=True)


def _terminate_line(path) -> None:
    """A killed trainer may have left half a line: end it so the next event parses."""
    try:
        with path.open("rb+") as f:
            if f.seek(0, 2) == 0:
                return
            f.seek(-1, 2)
            if f.read(1) != b"\n":
                f.write(b"\n")
    except FileNotFoundError:
        pass


def start_run(run_id: int, worker_name: str) -> str:
    """Prepare, launch and follow a run this worker claimed; returns its final state."""
    run = Run.objects.select_related("owner").get(pk=run_id)
    if run.worker_name != worker_name or run.state != Run.State.STARTING:
        return ""
    run_dir = run.run_dir
    Run.objects.filter(pk=run_id, state=Run.State.STARTING).update(
        state=Run.State.PREPARING, progress={}
    )
    push_progress(run_id)
    # The fence, first thing (preparing can take minutes): a torchrun of an earlier
    # attempt still alive on a host we cannot reach (cut off from the database, not from
    # the shared storage) reads this at its next step and stops writing into the folder.
    run_dir.mkdir(parents=True, exist_ok=True)
    write_attempt(run_dir, run.attempt, host=hosts.host_name(), worker=worker_name)
    try:
        config = parse_config(resolve_corpora(run))
        check_paths(config)
        nproc = hosts.nproc_for(config, len(hosts.gpus()))
    except (PreparationError, ConfigError, hosts.HostError) as exc:
        return _end(run_id, worker_name, Run.State.FAILED, str(exc))
    if Run.objects.filter(pk=run_id, stop_requested=True).exists():
        return _end(run_id, worker_name, Run.State.STOPPED, "stopped before launch")

    resume = None
    start_step = 0
    if run.resume_from:
        start_step = resume_step(run.resume_from)
        resume = str(run_dir / run.resume_from)
    if run.attempt > 1:
        abandon_after(run, start_step)
    # A torchrun of an earlier attempt still alive here would write into the same folder.
    for pid, other_dir in launcher.find_wrappers(run_dir.parent).items():
        if other_dir == run_dir:
            launcher.kill_tree(pid)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / launcher.CONFIG_FILE).write_text(dump_config(config), encoding="utf-8")
    _terminate_line(run_dir / launcher.EVENTS_FILE)
    cmd = launcher.build_command(
        run_dir,
        nproc_per_node=nproc,
        resume=resume,
        shutdown_timeout=settings.RUN_STOP_GRACE_SECONDS,
        attempt=run.attempt,
    )
    proc = launcher.spawn(cmd, run_dir)
    launched = Run.objects.filter(
        pk=run_id, worker_name=worker_name, state=Run.State.PREPARING
    ).update(
        state=Run.State.STARTING,
        pid=proc.pid,
        heartbeat_at=timezone.now(),
        progress={},
        step=start_step,
        total_steps=config.resolved_total_steps(nproc),
    )
    if not launched:  # marked lost or stopped while preparing: this launch is not wanted
        launcher.kill_tree(proc.pid)
        proc.wait()
        return ""
    log.info("run %s: launched pid %s: %s", run_id, proc.pid, " ".join(cmd))
    return supervise(run_id, Handle(proc.pid, run_dir, proc, attempt=run.attempt), worker_name)


def reattach(run_id: int, worker_name: str, seen_worker: str, seen_heartbeat) -> str:
    """Follow a run whose torchrun outlived its follower (worker restart); or end it if the
    process is gone. Nothing happens if another follower took the run first."""
    run = Run.objects.get(pk=run_id)
    if not run.pid or not claim_reattach(
        run_id, worker_name, hosts.host_name(), seen_worker, seen_heartbeat
    ):
        return ""
    log.info("run %s: re-attached to pid %s from offset %s", run_id, run.pid, run.events_offset)
    return supervise(run_id, Handle(run.pid, run.run_dir, attempt=run.attempt), worker_name)
