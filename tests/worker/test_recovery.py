"""Lost runs: stale heartbeats are marked lost and auto-resumed within max_restarts."""

from __future__ import annotations

import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from webapp.runs.models import Run
from worker import hosts, launcher
from worker.recovery import reap_orphans, sweep

from .helpers import commit_checkpoint, make_run

pytestmark = pytest.mark.django_db


def _config(auto_resume: bool, max_restarts: int = 2) -> dict:
    return {
        "model": {"path": "/m"},
        "data": {"corpora": [{"path": "dataset://1"}]},
        "checkpoint": {"auto_resume": auto_resume, "max_restarts": max_restarts},
    }


def _stale(settings) -> object:
    return timezone.now() - timedelta(seconds=settings.RUN_LOST_AFTER_SECONDS + 5)


def test_a_run_with_a_stale_heartbeat_is_marked_lost(alice, settings):
    run = make_run(alice, _config(False), state=Run.State.RUNNING, heartbeat_at=_stale(settings))
    fresh = make_run(alice, _config(False), state=Run.State.RUNNING, heartbeat_at=timezone.now())
    done = sweep(None)
    assert done["lost"] == [run.pk] and done["resumed"] == []
    run.refresh_from_db()
    assert run.state == Run.State.LOST and "no heartbeat since" in run.message
    assert Run.objects.get(pk=fresh.pk).state == Run.State.RUNNING


def test_a_lost_run_with_auto_resume_is_queued_from_its_latest_checkpoint(alice, settings):
    run = make_run(alice, _config(True), state=Run.State.RUNNING, heartbeat_at=_stale(settings))
    commit_checkpoint(run.run_dir, 6)
    assert sweep(None)["resumed"] == [run.pk]
    run.refresh_from_db()
    assert run.state == Run.State.QUEUED
    assert run.resume_from == "checkpoints/step-000006"
    assert run.restarts == 1


def test_auto_resume_stops_at_max_restarts(alice, settings):
    run = make_run(
        alice, _config(True, 2), state=Run.State.RUNNING, heartbeat_at=_stale(settings), restarts=2
    )
    commit_checkpoint(run.run_dir, 6)
    assert sweep(None)["resumed"] == []
    run.refresh_from_db()
    assert run.state == Run.State.LOST and run.restarts == 2


def test_a_stale_run_whose_torchrun_lives_on_this_host_is_reattached_not_lost(alice, settings):
    import subprocess

    run = make_run(alice, _config(True), state=Run.State.RUNNING, heartbeat_at=_stale(settings))
    run.run_dir.mkdir(parents=True)
    # Stands in for the torchrun wrapper: the pid check matches the run directory.
    proc = subprocess.Popen(["/bin/sh", "-c", "sleep 30", "sh", str(run.run_dir)])
    try:
        Run.objects.filter(pk=run.pk).update(pid=proc.pid, host=hosts.host_name())
        sent = []
        done = sweep(lambda *args: sent.append(args))
        assert done["reattached"] == [run.pk] and done["lost"] == []
        assert sent and sent[0][0] == run.pk
        assert Run.objects.get(pk=run.pk).state == Run.State.RUNNING
    finally:
        proc.kill()
        proc.wait()


def _fake_wrapper(run: Run):
    """A launch wrapper (as launcher.spawn starts it) that just sleeps."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-c", "import time; time.sleep(30)", "--run-dir", str(run.run_dir)]
    return launcher.spawn(cmd, run.run_dir)


def test_orphan_torchruns_of_runs_not_followed_here_are_killed(alice):
    lost = make_run(alice, state=Run.State.LOST, host=hosts.host_name())
    followed = make_run(alice, state=Run.State.RUNNING, host=hosts.host_name())
    # Resumed on another host: the row no longer names this host or this pid.
    elsewhere = make_run(alice, state=Run.State.RUNNING, host="other-host")
    procs = {run.pk: _fake_wrapper(run) for run in (lost, followed, elsewhere)}
    try:
        Run.objects.filter(pk=lost.pk).update(pid=procs[lost.pk].pid)
        Run.objects.filter(pk=followed.pk).update(pid=procs[followed.pk].pid)
        Run.objects.filter(pk=elsewhere.pk).update(pid=12345)
        assert sorted(reap_orphans()) == sorted([lost.pk, elsewhere.pk])
        assert procs[lost.pk].wait(timeout=10) is not None
        assert procs[elsewhere.pk].wait(timeout=10) is not None
        assert procs[followed.pk].poll() is None
        assert Run.objects.get(pk=lost.pk).pid is None
    finally:
        for proc in procs.values():
            launcher.kill_tree(proc.pid)
            proc.wait()


def test_a_run_preempted_from_outside_resumes_from_its_checkpoint_with_auto_resume(alice):
    from worker.recovery import resume_if_preempted

    run = make_run(alice, _config(True), state=Run.State.PREEMPTED)
    commit_checkpoint(run.run_dir, 8)
    assert resume_if_preempted(run.pk) == "resumed"
    run.refresh_from_db()
    assert run.state == Run.State.QUEUED
    assert run.resume_from == "checkpoints/step-000008" and run.restarts == 1


def test_a_preempted_run_without_auto_resume_and_a_stopped_run_stay_as_they_are(alice):
    from worker.recovery import resume_if_preempted

    preempted = make_run(alice, _config(False), state=Run.State.PREEMPTED)
    stopped = make_run(alice, _config(True), state=Run.State.STOPPED)
    for run in (preempted, stopped):
        commit_checkpoint(run.run_dir, 4)
    assert resume_if_preempted(preempted.pk) == "preempted"
    assert resume_if_preempted(stopped.pk) == ""
    assert Run.objects.get(pk=preempted.pk).state == Run.State.PREEMPTED
    assert Run.objects.get(pk=stopped.pk).state == Run.State.STOPPED
