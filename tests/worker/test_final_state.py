"""How a run ends: the trainer's last status, whether the user stopped it, the exit status."""

from __future__ import annotations

import pytest

from trainer.fence import EXIT_SUPERSEDED, write_attempt
from webapp.runs.models import Run
from worker.supervisor import final_state


def _run(tmp_path, settings, **fields) -> Run:
    settings.RUNS_ROOT = tmp_path
    run = Run(pk=1, name="r", config={}, **fields)
    (tmp_path / "1").mkdir(exist_ok=True)
    (tmp_path / "1" / "train.log").write_text("step 1\nTraceback: boom\nRuntimeError: CUDA OOM\n")
    return run


@pytest.mark.parametrize(
    ("status", "stop", "code", "expected"),
    [
        ("completed", False, 0, Run.State.COMPLETED),
        ("preempted", True, 1, Run.State.STOPPED),
        ("preempted", False, 1, Run.State.PREEMPTED),
        ("running", True, None, Run.State.STOPPED),
        ("", False, 0, Run.State.COMPLETED),
        ("failed", False, 1, Run.State.FAILED),
        ("running", False, 1, Run.State.FAILED),
        ("", False, None, Run.State.FAILED),
    ],
)
def test_the_final_state_follows_the_trainer_then_the_exit_status(
    tmp_path, settings, status, stop, code, expected
):
    run = _run(tmp_path, settings, trainer_status=status, stop_requested=stop)
    assert final_state(run, code, killed=False)[0] == expected


def test_a_failure_carries_the_trainers_message_and_the_end_of_the_log(tmp_path, settings):
    run = _run(tmp_path, settings, trainer_status="failed", message="RuntimeError: CUDA OOM")
    state, message = final_state(run, 1, killed=False)
    assert state == Run.State.FAILED
    assert message.startswith("RuntimeError: CUDA OOM")
    assert "Traceback: boom" in message


def test_a_crash_without_status_names_the_exit_status(tmp_path, settings):
    run = _run(tmp_path, settings, trainer_status="running")
    assert "torchrun exited with status 137" in final_state(run, 137, killed=False)[1]


def test_a_stop_that_needed_sigkill_says_there_is_no_new_checkpoint(tmp_path, settings):
    run = _run(tmp_path, settings, trainer_status="running", stop_requested=True)
    state, message = final_state(run, -9, killed=True)
    assert state == Run.State.STOPPED and "killed after the grace period" in message


@pytest.mark.parametrize(("status", "code"), [("running", 1), ("completed", 0), ("", 76)])
def test_a_torchrun_superseded_by_a_newer_attempt_gets_no_state(tmp_path, settings, status, code):
    # The newer attempt's worker claimed the row (attempt 2) and wrote attempt.json.
    run = _run(tmp_path, settings, trainer_status=status, attempt=2)
    write_attempt(run.run_dir, 2, host="b", worker="w@b")
    state, message = final_state(run, code, killed=False, attempt=1)
    assert state == "" and "superseded by attempt 2" in message


def test_exit_76_alone_says_superseded_and_the_current_attempt_ends_normally(tmp_path, settings):
    run = _run(tmp_path, settings, trainer_status="running", attempt=1)
    assert final_state(run, EXIT_SUPERSEDED, killed=False)[0] == ""
    write_attempt(run.run_dir, 1)
    assert final_state(run, 1, killed=False, attempt=1)[0] == Run.State.FAILED
    assert final_state(run, 0, killed=False, attempt=1)[0] == Run.State.COMPLETED
