"""The web app's handles on runs: queue, stop, resume (validated against server records)."""

from __future__ import annotations

import pytest

from webapp.runs.models import Checkpoint, Run
from worker.control import ControlError, queue_resume, request_stop

from .helpers import commit_checkpoint, make_run

pytestmark = pytest.mark.django_db


def test_stopping_a_queued_run_stops_it_at_once(alice):
    run = make_run(alice, state=Run.State.QUEUED)
    assert request_stop(run)
    run.refresh_from_db()
    assert run.state == Run.State.STOPPED and run.stop_requested


def test_stopping_a_running_run_sets_the_flag_for_its_worker(alice):
    run = make_run(alice, state=Run.State.RUNNING)
    assert request_stop(run)
    run.refresh_from_db()
    assert run.state == Run.State.RUNNING and run.stop_requested


def test_stopping_an_ended_run_does_nothing(alice):
    run = make_run(alice, state=Run.State.COMPLETED)
    assert not request_stop(run)


def test_resume_queues_a_new_attempt_from_the_latest_checkpoint(
    alice, django_capture_on_commit_callbacks
):
    run = make_run(alice, state=Run.State.STOPPED, stop_requested=True, attempt=1)
    for step in (4, 8):
        commit_checkpoint(run.run_dir, step)
    with django_capture_on_commit_callbacks() as callbacks:
        queue_resume(run, "latest", total_steps=500)
    assert len(callbacks) == 1  # the Celery message goes out after commit
    run.refresh_from_db()
    assert run.state == Run.State.QUEUED
    assert run.resume_from == "checkpoints/step-000008"
    assert not run.stop_requested
    assert run.config["schedule"]["total_steps"] == 500


def test_latest_skips_checkpoints_a_resume_abandoned(alice):
    run = make_run(alice, state=Run.State.STOPPED)
    for step in (4, 8):
        commit_checkpoint(run.run_dir, step)
    Checkpoint.objects.create(run=run, step=8, path="checkpoints/step-000008", deleted=True)
    queue_resume(run)
    run.refresh_from_db()
    assert run.resume_from == "checkpoints/step-000004"


def test_resume_refuses_a_checkpoint_flagged_deleted_even_while_its_folder_is_on_disk(alice):
    run = make_run(alice, state=Run.State.STOPPED)
    for step in (4, 8):
        commit_checkpoint(run.run_dir, step)
    Checkpoint.objects.create(run=run, step=8, path="checkpoints/step-000008", deleted=True)
    with pytest.raises(ControlError, match="was deleted") as exc:
        queue_resume(run, "checkpoints/step-000008")
    assert exc.value.field == "checkpoint"
    run.refresh_from_db()
    assert (run.state, run.resume_from) == (Run.State.STOPPED, "")


def test_resume_refuses_an_active_run(alice):
    run = make_run(alice, state=Run.State.RUNNING)
    with pytest.raises(ControlError) as exc:
        queue_resume(run)
    assert exc.value.field == "state"


@pytest.mark.parametrize(
    "path",
    ["../../../etc", "/etc/passwd", "checkpoints/step-000004/../../x", "checkpoints/step-000099"],
)
def test_resume_refuses_a_path_that_is_not_a_committed_checkpoint_of_the_run(alice, path):
    run = make_run(alice, state=Run.State.STOPPED)
    commit_checkpoint(run.run_dir, 4)
    with pytest.raises(ControlError) as exc:
        queue_resume(run, path)
    assert exc.value.field == "checkpoint"
    run.refresh_from_db()
    assert run.state == Run.State.STOPPED


def test_resume_needs_total_steps_beyond_the_checkpoint(alice):
    run = make_run(alice, state=Run.State.STOPPED)
    commit_checkpoint(run.run_dir, 8)
    with pytest.raises(ControlError) as exc:
        queue_resume(run, "checkpoints/step-000008", total_steps=8)
    assert exc.value.field == "total_steps"


def test_resume_without_any_checkpoint_is_refused(alice):
    run = make_run(alice, state=Run.State.FAILED)
    with pytest.raises(ControlError, match="no committed checkpoint"):
        queue_resume(run)
