"""The launcher: the torchrun command, its own session, exit status, pid checks, kills."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.trainer.train_helpers import (
    child_env,
    demo_doc_texts,
    run_config,
    write_config,
    write_prepared_corpus,
)
from trainer.events import read_events
from worker import launcher


def test_the_command_runs_torchrun_standalone_from_this_python(tmp_path):
    cmd = launcher.build_command(tmp_path, nproc_per_node=2, resume="/r/ckpt", shutdown_timeout=7)
    assert cmd[:3] == [sys.executable, "-m", "trainer.torchrun"]
    assert "--standalone" in cmd
    assert cmd[cmd.index("--nproc-per-node") + 1] == "2"
    assert cmd[cmd.index("--shutdown-timeout") + 1] == "7"
    assert cmd[cmd.index("-m", 3) + 1] == "trainer.train"
    assert cmd[cmd.index("--config") + 1] == str(tmp_path / "config.yaml")
    assert cmd[cmd.index("--run-dir") + 1] == str(tmp_path)
    assert cmd[-2:] == ["--resume", "/r/ckpt"]
    assert "--attempt" not in cmd  # the trainer fences only when told its attempt


def test_the_command_tells_the_trainer_its_attempt(tmp_path):
    cmd = launcher.build_command(tmp_path, nproc_per_node=1, attempt=3)
    assert cmd[-2:] == ["--attempt", "3"]


def test_a_spawned_command_logs_to_train_log_and_records_its_exit_status(tmp_path):
    proc = launcher.spawn(
        [
            sys.executable,
            "-c",
            "import sys; print('hello from rank 0'); sys.exit(3)",
            str(tmp_path),
        ],
        tmp_path,
    )
    assert proc.wait(timeout=30) == 0  # the wrapper itself exits cleanly...
    assert launcher.read_exit_code(tmp_path) == 3  # ...and records the command's status
    assert launcher.log_tail(tmp_path) == ["hello from rank 0"]
    assert not launcher.is_alive(proc.pid, tmp_path)


def test_the_process_runs_in_its_own_session_and_survives_sigterm_to_record_status(tmp_path):
    script = "import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(75))\ntime.sleep(30)"
    proc = launcher.spawn([sys.executable, "-c", script, str(tmp_path)], tmp_path)
    try:
        time.sleep(1.0)
        assert launcher.is_alive(proc.pid, tmp_path)
        assert subprocess.os.getsid(proc.pid) == proc.pid
        assert launcher.signal_group(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        assert launcher.read_exit_code(tmp_path) == 75
    finally:
        launcher.kill_tree(proc.pid)


def test_a_pid_running_something_else_is_not_taken_for_the_run(tmp_path):
    other = subprocess.Popen(["sleep", "30"])
    try:
        assert not launcher.is_alive(other.pid, tmp_path)
        assert not launcher.is_alive(None, tmp_path)
    finally:
        other.kill()
        other.wait()


def test_kill_tree_reaches_children_in_other_sessions(tmp_path):
    # Like torchrun's ranks: a child started in a session of its own.
    script = (
        "import subprocess, sys, time\n"
        "c = subprocess.Popen(['sleep', '60'], start_new_session=True)\n"
        "print(c.pid, flush=True)\n"
        "time.sleep(60)"
    )
    proc = launcher.spawn([sys.executable, "-c", script, str(tmp_path)], tmp_path)
    deadline = time.monotonic() + 30
    while not launcher.log_tail(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    child = int(launcher.log_tail(tmp_path)[0])
    assert child in launcher.descendants(proc.pid)
    launcher.kill_tree(proc.pid)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while launcher._proc_stat(child) not in (None,) and launcher._proc_stat(child)[0] != "Z":
        assert time.monotonic() < deadline, "the child in its own session survived"
        time.sleep(0.1)


def test_find_wrappers_counts_each_launch_once_by_its_session_leader(tmp_path):
    runs_root = tmp_path / "runs"
    run_dir = runs_root / "7"
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)", "--run-dir", str(run_dir)]
    wrapper = launcher.spawn(sleeper, run_dir)
    # The same command line outside its own session: what the wrapper's forked child
    # looks like for a moment before it execs "$@". It must not count as a second launch.
    # Its own process group (so the kill below stays inside the test) but not its own session.
    twin = subprocess.Popen(
        ["/bin/sh", "-c", launcher._WRAPPER, "sh", *sleeper], cwd=run_dir, process_group=0
    )
    try:
        deadline = time.monotonic() + 10
        while launcher.read_exit_code(run_dir) is None and time.monotonic() < deadline:
            found = launcher.find_wrappers(runs_root)
            if twin.pid in found or wrapper.pid in found:
                break
            time.sleep(0.05)
        assert found == {wrapper.pid: run_dir}
    finally:
        for proc in (wrapper, twin):
            launcher.kill_tree(proc.pid)
            proc.wait(timeout=10)


@pytest.mark.slow
def test_a_stop_ends_train_log_with_one_line_and_no_traceback(tiny_model_dir, tmp_path):
    corpus = write_prepared_corpus(tmp_path / "corpus", tiny_model_dir, demo_doc_texts(0, 200))
    # Many steps, so the stop lands mid-run; no periodic checkpoints, so the one saved is the stop's.
    cfg = run_config(
        tiny_model_dir,
        [(corpus, 1.0)],
        **{"schedule.total_steps": 5000, "checkpoint.interval": 0, "eval.interval": 0},
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_config(run_dir / launcher.CONFIG_FILE, cfg)
    proc = launcher.spawn(
        launcher.build_command(run_dir, nproc_per_node=2, shutdown_timeout=60), run_dir, child_env()
    )
    try:
        deadline = time.monotonic() + 120
        while not any(e["kind"] == "metric" for e in read_events(run_dir)):
            assert time.monotonic() < deadline, (run_dir / launcher.LOG_FILE).read_text()[-3000:]
            time.sleep(0.2)
        launcher.signal_group(proc.pid, signal.SIGTERM)  # what the supervisor does on a stop
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            launcher.kill_tree(proc.pid)
    log = (run_dir / launcher.LOG_FILE).read_text()
    status = [e for e in read_events(run_dir) if e["kind"] == "status"][-1]
    assert status["data"]["state"] == "preempted", log[-3000:]
    step = status["step"]
    assert "Traceback" not in log and "SignalException" not in log, log[-3000:]
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines[-1] == f"stop requested (SIGTERM): checkpoint saved at step {step}, exiting"
    assert (
        launcher.read_exit_code(run_dir) == 1
    )  # torchrun's status for a signalled stop, as before
