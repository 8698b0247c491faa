"""Lost runs: stale heartbeats are marked lost and auto-resumed within max_restarts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from webapp.runs.models import Run
from worker import hosts
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


def test_orphan_torchruns_of_runs_not_followed_here_are_killed(alice):
    import subprocess

    run = make_run(alice, state=Run.State.LOST)
    run.run_dir.mkdir(parents=True)
    proc = subprocess.Popen(
        ["/bin/sh", "-c", "sleep 30", "sh", str(run.run_dir)], start_new_session=True
    )
    try:
        Run.objects.filter(pk=run.pk).update(pid=proc.pid, host=hosts.host_name())
        assert reap_orphans() == [run.pk]
        assert proc.wait(timeout=10) != 0
        assert Run.objects.get(pk=run.pk).pid is None
    finally:
        proc.kill()
