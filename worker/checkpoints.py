"""Checkpoint work the web app hands to the worker: export to HF format, generate a
sample, remove a deleted checkpoint's files.

Plain functions (the Celery tasks in ``checkpoint_tasks.py`` only wrap them). Each
claims its row with a conditional update (queued -> running) so a redelivered task
does the work once, runs the trainer's CLI in a child process (a crash or a large
model cannot take the Celery worker down with it) and records the outcome on the
row, then notifies the run page through ``broadcast``.

Also home of :func:`resolve_inside`, the one way web and worker turn a relative
path stored in a row or sent by a browser into a path inside a run directory.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from webapp.runs.models import Checkpoint, Sample
from webapp.runs.public_errors import public_error
from webapp.runs.serializers import broadcast, checkpoint_dict, sample_dict

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXPORT_TIMEOUT_S = 6 * 3600
GENERATE_TIMEOUT_S = 15 * 60
ERROR_TAIL_CHARS = 4000
# A deleted checkpoint's folder is renamed to ``checkpoints/.deleting-<pk>-<token>`` before
# its files are removed: no ``step-N`` name, so nothing that lists committed checkpoints
# (retention, the resume picker, ``--resume latest``) ever sees a half-removed folder.
TRASH_PREFIX = ".deleting-"


class CLIError(RuntimeError):
    """A trainer CLI exited non-zero.

    ``str()`` holds the end of its stderr, for the worker's log; ``public_message`` is
    the one line meant for the page (the CLI's ``{"error": ...}`` result when it printed
    one), still to be scrubbed of paths (:func:`webapp.runs.public_errors.public_error`).
    """

    def __init__(self, detail: str, public_message: str) -> None:
        super().__init__(detail)
        self.public_message = public_message


class PathEscapeError(ValueError):
    """A relative path that would leave its root (``..``, absolute, or a symlink out)."""


def resolve_inside(root: Path, relative: str) -> Path:
    """``root / relative`` resolved (symlinks followed); refuses anything outside ``root``."""
    if "\x00" in relative:
        raise PathEscapeError("path contains a NUL byte")
    rel = Path(relative)
    if rel.is_absolute():
        raise PathEscapeError(f"absolute path refused: {relative!r}")
    base = Path(root).resolve()
    target = (base / rel).resolve()
    if target != base and base not in target.parents:
        raise PathEscapeError(f"path leaves the run directory: {relative!r}")
    return target


def checkpoint_folder(run_dir: Path, relative: str) -> Path:
    """A checkpoint row's folder: resolved inside ``run_dir`` and directly under its
    ``checkpoints/`` (a row naming the run directory, ``checkpoints/`` itself or anything
    else is refused with :class:`PathEscapeError`)."""
    folder = resolve_inside(run_dir, relative)
    if folder.parent != resolve_inside(run_dir, "checkpoints"):
        raise PathEscapeError(f"not a checkpoint folder of this run: {relative!r}")
    return folder


def move_to_trash(run_dir: Path, checkpoint: Checkpoint) -> Path | None:
    """Rename a checkpoint's folder out of the ``step-N`` namespace (one atomic rename, so
    cheap enough for a web request); returns the new path, or None when the folder is
    already gone. Raises :class:`PathEscapeError` or ``OSError``."""
    folder = checkpoint_folder(run_dir, checkpoint.path)
    # The token keeps names unique: a step can be written, deleted, rewritten (a resume
    # from before it) and deleted again before the first removal ran.
    trash = folder.parent / f"{TRASH_PREFIX}{checkpoint.pk}-{secrets.token_hex(4)}"
    try:
        os.rename(folder, trash)
    except FileNotFoundError:  # removed already (trainer retention, an earlier request)
        return None
    return trash


def delete_checkpoint(checkpoint_id: int) -> int:
    """Remove the files of a deleted checkpoint (what :func:`move_to_trash` moved aside)
    and tell the run page; returns how many folders were removed.

    Only ``checkpoints/.deleting-<pk>-*`` of the row's own run is touched, whatever the
    row's path says, so a second delivery (or a row that a resume has since revived at
    the same step) removes nothing else.
    """
    ckpt = Checkpoint.objects.filter(pk=checkpoint_id).first()
    if ckpt is None:
        return 0
    removed = 0
    try:
        root = resolve_inside(ckpt.run.run_dir, "checkpoints")
    except PathEscapeError:
        log.warning("run %s: checkpoints/ leaves the run directory; nothing removed", ckpt.run_id)
        return 0
    for entry in sorted(root.glob(f"{TRASH_PREFIX}{ckpt.pk}-*")):
        if entry.is_symlink() or not entry.is_dir():  # never ours: do not follow or remove
            log.warning("run %s: skipping %s (not a folder)", ckpt.run_id, entry.name)
            continue
        try:
            shutil.rmtree(entry)
        except FileNotFoundError:
            pass  # a concurrent delivery got there first
        except OSError:
            log.exception("run %s: could not remove %s", ckpt.run_id, entry.name)
            continue
        removed += 1
    if ckpt.deleted:
        _notify_checkpoint(ckpt)
    return removed


def export_dir_for(checkpoint: Checkpoint) -> str:
    """Where a checkpoint's export goes, relative to its run directory."""
    return f"export/step-{checkpoint.step:06d}"


def export_checkpoint(checkpoint_id: int) -> bool:
    """Export one checkpoint to Hugging Face format with ``python -m trainer.export``.

    Returns False when another task got there first (the row was not ``queued``).
    """
    claimed = Checkpoint.objects.filter(
        pk=checkpoint_id, export_state=Checkpoint.ExportState.QUEUED
    ).update(export_state=Checkpoint.ExportState.RUNNING, export_error="")
    if not claimed:
        return False
    ckpt = Checkpoint.objects.select_related("run").get(pk=checkpoint_id)
    _notify_checkpoint(ckpt)
    try:
        run_dir = ckpt.run.run_dir
        source = resolve_inside(run_dir, ckpt.path)
        relative_out = export_dir_for(ckpt)
        out = resolve_inside(run_dir, relative_out)
        _run_cli(
            ["trainer.export", "--checkpoint", str(source), "--out", str(out), "--overwrite"],
            EXPORT_TIMEOUT_S,
        )
        if not (out / "config.json").is_file():
            raise RuntimeError(f"trainer.export finished but {relative_out}/config.json is missing")
    except Exception as exc:  # the full story to the log; a short, path-free line to the page
        log.exception("export of checkpoint %s failed", checkpoint_id)
        Checkpoint.objects.filter(pk=checkpoint_id).update(
            export_state=Checkpoint.ExportState.FAILED,
            export_error=public_error(exc, ckpt.run_id),
        )
    else:
        Checkpoint.objects.filter(pk=checkpoint_id).update(
            export_state=Checkpoint.ExportState.DONE, export_path=relative_out
        )
    _notify_checkpoint(Checkpoint.objects.get(pk=checkpoint_id))
    return True


def generate_sample(sample_id: int) -> bool:
    """Generate a sample's text from its checkpoint with ``python -m trainer.generate``.

    Returns False when another task got there first (the row was not ``queued``).
    """
    claimed = Sample.objects.filter(pk=sample_id, state=Sample.State.QUEUED).update(
        state=Sample.State.RUNNING
    )
    if not claimed:
        return False
    sample = Sample.objects.select_related("checkpoint", "run").get(pk=sample_id)
    _notify_sample(sample)
    try:
        model = resolve_inside(sample.run.run_dir, sample.checkpoint.path)
        args = ["trainer.generate", "--model", str(model), "--prompt", sample.prompt]
        for key, flag in GENERATE_FLAGS.items():
            if sample.params.get(key) is not None:
                args += [flag, str(sample.params[key])]
        result = _json_result(_run_cli(args, GENERATE_TIMEOUT_S))
        text = result.get("text", result.get("output", result.get("completion")))
        if not isinstance(text, str):
            raise RuntimeError(f"trainer.generate printed no text: {result!r}"[:ERROR_TAIL_CHARS])
    except Exception as exc:
        log.exception("sample %s failed", sample_id)
        Sample.objects.filter(pk=sample_id).update(
            state=Sample.State.FAILED, error=public_error(exc, sample.run_id)
        )
    else:
        Sample.objects.filter(pk=sample_id).update(state=Sample.State.DONE, output=text)
    _notify_sample(Sample.objects.get(pk=sample_id))
    return True


# Sample.params keys -> trainer.generate flags.
GENERATE_FLAGS = {
    "max_new_tokens": "--max-new-tokens",
    "temperature": "--temperature",
    "top_p": "--top-p",
    "seed": "--seed",
}


def _run_cli(args: list[str], timeout: float) -> str:
    """Run ``python -m <args>``; return stdout, or raise :class:`CLIError`."""
    # From the project root, so ``-m trainer...`` resolves wherever the worker was started.
    proc = subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_ROOT,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-ERROR_TAIL_CHARS:]
        raise CLIError(
            f"{args[0]} exited with {proc.returncode}: {tail}",
            f"{args[0]}: {cli_failure(proc.returncode, proc.stdout, proc.stderr)}",
        )
    return proc.stdout


def cli_failure(returncode: int, stdout: str, stderr: str) -> str:
    """What a failed trainer CLI says went wrong, in one line.

    The CLIs print ``{"error": ...}`` as their last stdout line for any exception
    (``trainer.inference.run_cli``); without one (killed, or it died before that), the
    last line of stderr is the exception line of a traceback.
    """
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (out of memory?)" if -returncode == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    try:
        error = _json_result(stdout).get("error")
    except RuntimeError:
        error = None
    if isinstance(error, str) and error.strip():
        return error.strip()
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"exited with status {returncode}"


def _json_result(stdout: str) -> dict[str, Any]:
    """The last line of ``stdout`` that is a JSON object (the CLIs' result line)."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    raise RuntimeError(f"no JSON result line in output: {stdout[-ERROR_TAIL_CHARS:]!r}")


def _notify_checkpoint(ckpt: Checkpoint) -> None:
    broadcast(ckpt.run_id, {"checkpoints": [checkpoint_dict(ckpt)]})


def _notify_sample(sample: Sample) -> None:
    broadcast(sample.run_id, {"samples": [sample_dict(sample)]})
