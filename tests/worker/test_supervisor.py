"""The follower loop against a stand-in process (no torchrun): stop, grace, SIGKILL, end."""

from __future__ import annotations

import sys

import pytest

from tests.stack import wait_for
from trainer.fence import write_attempt
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


# A fenced trainer of attempt 1: writes a metric a step until attempt.json names a newer
# attempt, then exits without another line (torchrun turns its 76 into 1).
FENCED = """
import json, pathlib, sys, time
run_dir = pathlib.Path(sys.argv[1])
with open(run_dir / "events.jsonl", "a") as f:
    for step in range(1, 10_000):
        if json.loads((run_dir / "attempt.json").read_text())["attempt"] > 1:
            sys.exit(1)
        f.write(json.dumps({"v": 1, "t": time.time(), "kind": "metric", "step": step,
                            "data": {"loss": 1.0}}) + "\\n")
        f.flush()
        time.sleep(0.05)
"""


def _start(run: Run, script: str, attempt: int | None = None) -> Handle:
    run.run_dir.mkdir(parents=True, exist_ok=True)
    proc = launcher.spawn([sys.executable, "-c", script, str(run.run_dir)], run.run_dir)
    Run.objects.filter(pk=run.pk).update(pid=proc.pid)
    return Handle(proc.pid, run.run_dir, proc, attempt=attempt)


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


# 0: the heartbeat notices first; 3600: the process ends first and finish() decides.
@pytest.mark.parametrize("beat", [0, 3600])
def test_a_follower_whose_run_went_to_a_newer_attempt_of_the_same_worker_leaves_it(
    alice, settings, beat
):
    settings.RUN_HEARTBEAT_SECONDS = beat
    run = make_run(alice, state=Run.State.RUNNING, worker_name="w@h", attempt=1)
    run.run_dir.mkdir(parents=True)
    write_attempt(run.run_dir, 1, host="h", worker="w@h")
    handle = _start(run, FENCED, attempt=1)
    wait_for(lambda: (run.run_dir / "events.jsonl").exists(), timeout=30, what="first event")
    # Lost and resumed meanwhile, and this same worker claimed the new attempt.
    Run.objects.filter(pk=run.pk).update(state=Run.State.STARTING, attempt=2)
    write_attempt(run.run_dir, 2, host="h", worker="w@h")
    assert supervise(run.pk, handle, "w@h", poll=0.05) == ""
    handle.proc.wait(timeout=10)
    run.refresh_from_db()
    # Not ended, not failed: the row is attempt 2's. (Ingesting the lines attempt 1 wrote
    # is the offset's business, not the fence's: it may have moved starting -> running.)
    assert run.state in (Run.State.STARTING, Run.State.RUNNING)
    assert (run.attempt, run.exit_code, run.finished_at, run.message) == (2, None, None, "")
