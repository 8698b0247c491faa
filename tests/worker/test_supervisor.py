"""The follower loop against a stand-in process (no torchrun): stop, grace, SIGKILL, end."""

from __future__ import annotations

import sys

import pytest

from tests.stack import wait_for
from webapp.runs.models import Metric, Run
from worker import launcher, supervisor
from worker.supervisor import Handle, supervise

from .helpers import make_run

pytestmark = pytest.mark.django_db(transaction=True)

# Writes a metric a step and ignores SIGTERM: a trainer stuck in a collective.
STUBBORN = """
import json, signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: None)
with open(sys.argv[1] + "/events.jsonl", "a") as f:
    for step in range(1, 10_000):
        f.write(json.dumps({"v": 1, "t": time.time(), "kind": "metric", "step": step,
                            "data": {"loss": 1.0}}) + "\\n")
        f.flush()
        time.sleep(0.05)
"""

# Writes three metrics and a completed status, then exits 0.
QUICK = """
import json, sys
with open(sys.argv[1] + "/events.jsonl", "a") as f:
    for step in (1, 2, 3):
        f.write(json.dumps({"v": 1, "t": 1.0, "kind": "metric", "step": step, "data": {"loss": 1.0}}) + "\\n")
    f.write(json.dumps({"v": 1, "t": 1.0, "kind": "status", "data": {"state": "completed", "message": "done"}}) + "\\n")
"""


def _start(run: Run, script: str) -> Handle:
    run.run_dir.mkdir(parents=True, exist_ok=True)
    proc = launcher.spawn([sys.executable, "-c", script, str(run.run_dir)], run.run_dir)
    Run.objects.filter(pk=run.pk).update(pid=proc.pid)
    return Handle(proc.pid, run.run_dir, proc)


def test_a_process_that_ends_by_itself_completes_the_run_with_every_event(alice):
    run = make_run(alice, state=Run.State.STARTING, worker_name="w@h", attempt=1)
    assert supervise(run.pk, _start(run, QUICK), "w@h", poll=0.05) == Run.State.COMPLETED
    run.refresh_from_db()
    assert (run.state, run.exit_code, run.message, run.step) == ("completed", 0, "done", 3)
    assert Metric.objects.filter(run=run).count() == 3


def test_a_stop_ignored_past_the_grace_period_ends_in_sigkill(alice, settings, monkeypatch):
    settings.RUN_STOP_GRACE_SECONDS = 0
    monkeypatch.setattr(supervisor, "KILL_MARGIN_SECONDS", 1)
    run = make_run(alice, state=Run.State.RUNNING, worker_name="w@h", attempt=1)
    handle = _start(run, STUBBORN)
    # Its SIGTERM handler is in place once it writes.
    wait_for(lambda: (run.run_dir / "events.jsonl").exists(), timeout=30, what="first event")
    Run.objects.filter(pk=run.pk).update(stop_requested=True)
    assert supervise(run.pk, handle, "w@h", poll=0.05) == Run.State.STOPPED
    run.refresh_from_db()
    assert "killed after the grace period" in run.message
    assert not launcher.is_alive(handle.pid, run.run_dir)
    # Whatever it wrote before it died was ingested, once.
    steps = list(Metric.objects.filter(run=run).values_list("step", flat=True))
    assert steps == list(range(1, len(steps) + 1))


def test_a_follower_whose_run_was_taken_over_kills_its_process_and_lets_go(alice, settings):
    settings.RUN_HEARTBEAT_SECONDS = 0
    run = make_run(alice, state=Run.State.RUNNING, worker_name="w@h", attempt=1)
    handle = _start(run, STUBBORN)
    # The sweep marked it lost meanwhile, and a new attempt was queued.
    Run.objects.filter(pk=run.pk).update(state=Run.State.QUEUED, worker_name="")
    assert supervise(run.pk, handle, "w@h", poll=0.05) == ""
    handle.proc.wait(timeout=10)
    assert Run.objects.get(pk=run.pk).state == Run.State.QUEUED
