"""Browser-facing error messages: short, and no absolute server path survives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from webapp.runs.public_errors import (
    PUBLIC_ERROR_CHARS,
    public_error,
    scrub_paths,
    server_roots,
    short_error,
)
from worker.checkpoints import CLIError, cli_failure

ROOTS = {"/srv/runs/12": "", "/srv/runs": "<runs>", "/data/models": "<models>"}


def test_paths_in_the_run_directory_become_relative_to_it():
    text = "checkpoint: /srv/runs/12/checkpoints/step-000007 is not a DCP checkpoint"
    assert scrub_paths(text, ROOTS) == (
        "checkpoint: checkpoints/step-000007 is not a DCP checkpoint"
    )


def test_the_run_directory_itself_shows_as_a_dot():
    assert scrub_paths("cannot write '/srv/runs/12'", ROOTS) == "cannot write '.'"


def test_paths_under_other_roots_get_the_roots_placeholder():
    text = "out: /srv/runs/13/export exists; model /data/models/llama-3/config.json broken"
    assert scrub_paths(text, ROOTS) == (
        "out: <runs>/13/export exists; model <models>/llama-3/config.json broken"
    )


def test_a_root_is_matched_only_as_a_whole_folder_name():
    # /srv/runs-old is not under /srv/runs: it falls to the catch-all, not to <runs>.
    assert scrub_paths("see /srv/runs-old/x.log", ROOTS) == "see …/x.log"


def test_any_other_absolute_path_keeps_only_its_last_name():
    text = "[Errno 2] No such file or directory: '/opt/secret/place/tokenizer.json'"
    assert scrub_paths(text, {}) == "[Errno 2] No such file or directory: '…/tokenizer.json'"
    assert scrub_paths('File "/usr/lib/python3/x.py", line 3', {}) == 'File "…/x.py", line 3'
    assert scrub_paths("PosixPath('/home/u/m/')", {}) == "PosixPath('…/m')"
    assert scrub_paths("PATH=/a/b:/c/d", {}) == "PATH=…/b:…/d"
    assert scrub_paths("--out=/srv/runs/12/export", ROOTS) == "--out=export"


def test_file_urls_are_paths_too_but_web_urls_and_relative_paths_stay():
    assert scrub_paths("open file:///etc/passwd failed", {}) == "open …/passwd failed"
    kept = "see https://huggingface.co/meta-llama/Llama-3 and checkpoints/step-000001, 3/4 N/A"
    assert scrub_paths(kept, {}) == kept


def test_scrubbing_twice_changes_nothing_more():
    once = scrub_paths("a /srv/runs/12/x and /srv/runs/9/y and /etc/z/w", ROOTS)
    assert once == "a x and <runs>/9/y and …/w"
    assert scrub_paths(once, ROOTS) == once


def test_a_root_is_also_recognised_by_its_resolved_spelling(tmp_path):
    real = tmp_path / "real-runs"
    real.mkdir()
    link = tmp_path / "runs-link"
    link.symlink_to(real)
    text = f"missing {real}/5/checkpoints/step-000001"
    assert scrub_paths(text, {str(link / "5"): ""}) == "missing checkpoints/step-000001"


def test_server_roots_name_the_configured_folders_and_the_run_directory(settings, tmp_path):
    settings.BASE_MODEL_ROOTS = [str(tmp_path / "models")]
    roots = server_roots(42)
    assert roots[str(settings.RUNS_ROOT / "42")] == ""
    assert roots[str(settings.RUNS_ROOT)] == "<runs>"
    assert roots[str(settings.MEDIA_ROOT)] == "<media>"
    assert roots[str(settings.PREPARED_ROOT)] == "<prepared>"
    assert roots[str(tmp_path / "models")] == "<models>"
    assert roots[sys.prefix] == "<python>"


def test_public_error_scrubs_this_deployments_paths(settings):
    exc = FileNotFoundError(f"no such file: {settings.RUNS_ROOT / '7' / 'checkpoints/step-000001'}")
    assert public_error(exc, 7) == "FileNotFoundError: no such file: checkpoints/step-000001"
    prepared = ValueError(f"bad shard {settings.PREPARED_ROOT}/abc/train-00000.bin")
    assert public_error(prepared, 7) == "ValueError: bad shard <prepared>/abc/train-00000.bin"


def test_short_error_prefers_the_public_message_and_is_bounded():
    exc = CLIError("stderr tail with /secret/traceback.py", "trainer.export: checkpoint bad")
    assert short_error(exc) == "trainer.export: checkpoint bad"
    long = short_error(RuntimeError("x" * 5000))
    assert len(long) == PUBLIC_ERROR_CHARS and long.endswith("…")
    assert short_error(KeyError()) == "KeyError"


def test_a_timeout_says_how_long_instead_of_quoting_the_command():
    exc = subprocess.TimeoutExpired(["/srv/venv/bin/python", "-m", "trainer.export"], 21600)
    assert short_error(exc) == "timed out after 21600 s"


def test_cli_failure_reads_the_clis_error_line_first():
    stdout = 'noise\n{"error": "checkpoint: /srv/runs/1/c is not a DCP checkpoint"}\n'
    stderr = "Traceback (most recent call last):\n  File ...\nValueError: other\n"
    assert cli_failure(2, stdout, stderr) == "checkpoint: /srv/runs/1/c is not a DCP checkpoint"


def test_cli_failure_without_an_error_line_takes_the_last_stderr_line():
    stderr = 'Traceback (most recent call last):\n  File "/x.py"\nMemoryError: too big\n\n'
    assert cli_failure(1, "", stderr) == "MemoryError: too big"
    assert cli_failure(1, "", "") == "exited with status 1"


@pytest.mark.parametrize(
    ("sig", "expected"),
    [(signal.SIGKILL, "killed by SIGKILL (out of memory?)"), (signal.SIGTERM, "killed by SIGTERM")],
)
def test_cli_failure_names_the_signal_that_killed_it(sig, expected):
    proc = subprocess.run([sys.executable, "-c", f"import os; os.kill(os.getpid(), {int(sig)})"])
    assert cli_failure(proc.returncode, "", "") == expected


def test_scrubbed_text_has_no_path_of_this_machine_left(settings):
    here = Path(__file__).resolve()
    text = f"{here} {os.getcwd()}/x {settings.MEDIA_ROOT}/u/1.jsonl {sys.executable}"
    scrubbed = scrub_paths(text, server_roots(3))
    assert not [word for word in scrubbed.split() if word.startswith("/")], scrubbed
    for leaked in (str(here.parent), os.getcwd(), str(settings.MEDIA_ROOT), sys.prefix):
        assert leaked not in scrubbed
