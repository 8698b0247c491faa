"""End to end: real Celery workers on the real Redis launch a real torchrun (2 CPU ranks).

One run is stopped and resumed; another loses its worker twice (re-attach, then lost and
auto-resumed). Each test checks that the database ends with every metric exactly once.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

from tests.stack import process, wait_for
from trainer.fence import ATTEMPT_FILE
from webapp.runs.models import Checkpoint, Run
from worker import launcher
from worker.celery_app import app
from worker.control import queue_resume, queue_run, request_stop

from .stack_helpers import (
    kill_torchruns,
    kill_worker,
    metric_steps,
    ready_dataset,
    run_state,
    tiny_config,
    worker_args,
    worker_env,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _empty_queues():
    """Messages left by an earlier test must not reach this test's workers."""
    app.control.purge()
    yield
    kill_torchruns(*Run.objects.values_list("pk", flat=True))


def _reached(run_id: int, step: int):
    def check() -> bool:
        run = run_state(run_id)
        assert run.state in Run.ACTIVE_STATES, f"run ended early: {run.state}: {run.message}"
        return run.step >= step

    return check


def _ended(run_id: int):
    return lambda: run_state(run_id).state not in Run.ACTIVE_STATES


def test_a_real_worker_answers_ping(tmp_path):
    with process(worker_args("ping"), tmp_path / "worker.log", worker_env()):
        replies = wait_for(lambda: app.control.ping(timeout=1.0), timeout=60, what="ping")
    assert any("pong" in str(r) for r in replies), replies
    assert app.send_task("worker.ping") is not None


# Attempt 1 only ends by the stop, however fast the machine: a short run could finish
# before the follower's next 0.5 s poll saw the stop. The resume sets a near total.
RUN_STEPS = 10_000
EXTRA_STEPS = 4  # what the resume trains past the stop's checkpoint


def test_a_run_is_claimed_once_stopped_with_a_checkpoint_and_resumed_to_completion(
    tmp_path, alice, tiny_model_dir, demo_corpus
):
    dataset = ready_dataset(alice, demo_corpus)
    run = Run.objects.create(
        owner=alice,
        name="stop-resume",
        config=tiny_config(tiny_model_dir, dataset, steps=RUN_STEPS),
    )
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    with (
        process(worker_args("a"), log_a, worker_env()),
        process(worker_args("b"), log_b, worker_env()),
    ):
        queue_run(run)
        # A redelivered or duplicated message: the claim lets exactly one worker run it.
        app.send_task("worker.run_training", args=[run.pk], queue="gpu")
        wait_for(_reached(run.pk, 3), timeout=120, what="step 3")
        first = run_state(run.pk)
        assert first.state == Run.State.RUNNING and first.attempt == 1
        # The fence the launch wrote before spawning torchrun (with --attempt 1).
        fence = json.loads((run.run_dir / ATTEMPT_FILE).read_text())
        assert fence == {"attempt": 1, "host": first.host, "worker": first.worker_name}
        assert launcher.is_alive(first.pid, first.run_dir)
        assert request_stop(first)
        wait_for(_ended(run.pk), timeout=90, what="the stop")
        stopped = run_state(run.pk)
        assert stopped.state == Run.State.STOPPED, stopped.message
        saved = Checkpoint.objects.filter(run=run, step=stopped.step).first()
        assert saved is not None, "the stop saved no checkpoint at its step"
        assert (run.run_dir / saved.path / ".metadata").is_file()
        assert not launcher.is_alive(stopped.pid, stopped.run_dir)
        assert metric_steps(run.pk) == list(range(1, stopped.step + 1))

        final = stopped.step + EXTRA_STEPS
        queue_resume(stopped, saved.path, total_steps=final)
        wait_for(_ended(run.pk), timeout=150, what="the resumed run")
    done = run_state(run.pk)
    assert done.state == Run.State.COMPLETED, done.message
    assert (done.attempt, done.step, done.total_steps) == (2, final, final)
    fence = json.loads((run.run_dir / ATTEMPT_FILE).read_text())
    assert fence == {"attempt": 2, "host": done.host, "worker": done.worker_name}
    assert "--attempt 2" in (log_a.read_text() + log_b.read_text())
    assert done.exit_code == 0
    # The chart continues: every step once, the ones after the stop from attempt 2.
    assert metric_steps(run.pk) == list(range(1, final + 1))
    attempts = dict(run.metrics.filter(kind="metric").values_list("step", "attempt"))
    assert attempts[saved.step] == 1 and attempts[saved.step + 1] == 2
    assert run.metrics.filter(kind="eval", step=final).exists()
    skipped = (log_a.read_text() + log_b.read_text()).count("is not queued any more")
    assert skipped >= 1
    launches = (log_a.read_text() + log_b.read_text()).count(": launched pid")
    assert launches == 2  # the first attempt and the resume: never a second torchrun


LOST_RUN_STEPS = 60


def test_a_killed_worker_reattaches_and_a_lost_run_auto_resumes(
    tmp_path, alice, tiny_model_dir, demo_corpus
):
    dataset = ready_dataset(alice, demo_corpus)
    # Long enough that the run cannot finish in the moments it runs unwatched below.
    config = tiny_config(
        tiny_model_dir, dataset, steps=LOST_RUN_STEPS, auto_resume=True, max_restarts=2
    )
    run = Run.objects.create(owner=alice, name="lost", config=config)
    env = worker_env()
    with process(worker_args("a"), tmp_path / "a1.log", env) as worker:
        queue_run(run)
        wait_for(_reached(run.pk, 2), timeout=120, what="step 2")
        # The tiny run would finish before a worker restarts on this machine: hold it still
        # (SIGSTOP) until the new worker is up, so the worker re-attaches to a live torchrun.
        first = run_state(run.pk)
        launcher.signal_tree(first.pid, signal.SIGSTOP)
        kill_worker(worker)
    assert launcher.is_alive(first.pid, first.run_dir), "torchrun must outlive its worker"

    # The same worker comes back: it follows the surviving torchrun, it starts no other.
    log = tmp_path / "a2.log"
    with process(worker_args("a"), log, env) as worker:
        wait_for(lambda: "re-attached to pid" in log.read_text(), timeout=90, what="re-attach")
        launcher.signal_tree(first.pid, signal.SIGCONT)
        wait_for(
            lambda: Checkpoint.objects.filter(run=run).exists() and _reached(run.pk, 6)(),
            timeout=120,
            what="a checkpoint after the re-attach",
        )
        again = run_state(run.pk)
        assert (again.pid, again.attempt, again.state) == (first.pid, 1, Run.State.RUNNING)
        assert again.heartbeat_at > first.heartbeat_at
        assert ": launched pid" not in log.read_text()
        launcher.signal_tree(first.pid, signal.SIGSTOP)
        # Now the whole host goes: worker and torchrun.
        kill_worker(worker)
        launcher.kill_tree(first.pid)
    wait_for(lambda: not launcher.is_alive(first.pid, first.run_dir), timeout=30, what="kill")
    # What the trainer wrote before it died, not the row's step: the killed worker may not
    # have ingested the last lines, and the resume rightly goes by the files on disk.
    written = _last_metric_step(first.run_dir / launcher.EVENTS_FILE)

    # Another worker with beat finds the stale heartbeat: lost, then auto-resumed.
    with process(worker_args("b", tmp_path / "beat"), tmp_path / "b.log", env):
        wait_for(lambda: run_state(run.pk).restarts == 1, timeout=60, what="lost + auto-resume")
        wait_for(_ended(run.pk), timeout=150, what="the resumed run")
    done = run_state(run.pk)
    assert done.state == Run.State.COMPLETED, done.message
    assert (done.attempt, done.restarts) == (2, 1)
    assert metric_steps(run.pk) == list(range(1, LOST_RUN_STEPS + 1))
    resumed_at = int(re.search(r"step-(\d+)", done.resume_from).group(1))
    assert 4 <= resumed_at <= written and resumed_at % 4 == 0


def _last_metric_step(events: Path) -> int:
    """The highest step of a metric line in ``events.jsonl`` (a torn last line is skipped)."""
    steps = [0]
    for line in events.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("kind") == "metric":
            steps.append(event["step"])
    return max(steps)
