"""Checkpoint actions on the run page: resume, export (+ download), sample, delete, files.

Actions are HTML form posts that redirect back to the run page with a message;
long work (export, generation, removing a deleted checkpoint's files) goes to Celery
on queue ``cpu``. Paths come only from rows and are resolved with
:func:`worker.checkpoints.resolve_inside`, so a path from the browser or a planted
symlink never leaves the run directory.
"""

from __future__ import annotations

import logging
import tarfile
from collections.abc import Iterator
from pathlib import Path

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_GET, require_POST

from webapp.jsonapi import BadRequest, json_view
from webapp.runs.models import Checkpoint, Run, Sample
from webapp.runs.page_views import visible_run
from worker.checkpoints import PathEscapeError, checkpoint_folder, move_to_trash, resolve_inside

log = logging.getLogger(__name__)

PROMPT_MAX_CHARS = 4000
MAX_NEW_TOKENS = 1024
MAX_TOTAL_STEPS = 10**9
STREAM_CHUNK = 1024 * 1024
# Exports that may be started again: never exported, failed, or done (re-export).
EXPORTABLE = (
    Checkpoint.ExportState.NONE,
    Checkpoint.ExportState.FAILED,
    Checkpoint.ExportState.DONE,
)


def _checkpoint(request: HttpRequest, run_id: int, checkpoint_id: int) -> tuple[Run, Checkpoint]:
    run = visible_run(request, run_id)
    ckpt = get_object_or_404(Checkpoint, pk=checkpoint_id, run=run, deleted=False)
    return run, ckpt


def _back(run: Run) -> HttpResponse:
    return redirect("runpage:detail", run_id=run.pk)


@require_POST
def resume(request: HttpRequest, run_id: int, checkpoint_id: int) -> HttpResponse:
    """Continue the run from this checkpoint in a new attempt (optional new total_steps)."""
    from worker.control import ControlError, queue_resume

    run, ckpt = _checkpoint(request, run_id, checkpoint_id)
    raw = request.POST.get("total_steps", "").strip()
    total_steps = None  # keep the run's schedule
    if raw:
        if not raw.isdigit() or not ckpt.step < int(raw) <= MAX_TOTAL_STEPS:
            messages.error(request, f"total_steps: a whole number above {ckpt.step}, please")
            return _back(run)
        total_steps = int(raw)
    try:
        queue_resume(run, ckpt.path, total_steps)
    except ControlError as exc:
        messages.error(request, f"Cannot resume: {exc}")
        return _back(run)
    messages.success(request, f"Resuming from step {ckpt.step} in a new attempt.")
    return _back(run)


@require_POST
def export(request: HttpRequest, run_id: int, checkpoint_id: int) -> HttpResponse:
    """Queue an export of this checkpoint to Hugging Face format."""
    from worker.checkpoint_tasks import export_checkpoint_task

    run, ckpt = _checkpoint(request, run_id, checkpoint_id)
    # Conditional update: two clicks (or two tabs) queue one export.
    queued = Checkpoint.objects.filter(pk=ckpt.pk, export_state__in=EXPORTABLE).update(
        export_state=Checkpoint.ExportState.QUEUED, export_error=""
    )
    if not queued:
        messages.error(request, f"Export of step {ckpt.step} is already {ckpt.export_state}.")
        return _back(run)
    transaction.on_commit(lambda: export_checkpoint_task.apply_async((ckpt.pk,), queue="cpu"))
    messages.success(request, f"Export of step {ckpt.step} queued.")
    return _back(run)


@require_GET
def export_download(request: HttpRequest, run_id: int, checkpoint_id: int) -> HttpResponse:
    """Stream the export folder as an uncompressed tar (safetensors do not compress)."""
    run, ckpt = _checkpoint(request, run_id, checkpoint_id)
    if ckpt.export_state != Checkpoint.ExportState.DONE or not ckpt.export_path:
        return HttpResponse("This checkpoint has no finished export.", status=404)
    try:
        folder = resolve_inside(run.run_dir, ckpt.export_path)
    except PathEscapeError:
        return HttpResponse("Export path is outside the run directory.", status=404)
    if not folder.is_dir():
        return HttpResponse("The export folder is gone.", status=404)
    name = f"run{run.pk}-step{ckpt.step:06d}"
    response = StreamingHttpResponse(stream_tar(folder, name), content_type="application/x-tar")
    response["Content-Disposition"] = f'attachment; filename="{name}.tar"'
    return response


@require_POST
def generate(request: HttpRequest, run_id: int, checkpoint_id: int) -> HttpResponse:
    """Queue text generation from this checkpoint for the prompt in the form."""
    from worker.checkpoint_tasks import generate_sample_task

    run, ckpt = _checkpoint(request, run_id, checkpoint_id)
    try:
        prompt, params = _sample_input(request.POST)
    except BadRequest as exc:
        messages.error(request, exc.message)
        return _back(run)
    sample = Sample.objects.create(run=run, checkpoint=ckpt, prompt=prompt, params=params)
    transaction.on_commit(lambda: generate_sample_task.apply_async((sample.pk,), queue="cpu"))
    messages.success(request, f"Generating from step {ckpt.step}; the text appears below.")
    return _back(run)


@require_POST
def delete(request: HttpRequest, run_id: int, checkpoint_id: int) -> HttpResponse:
    """Delete a checkpoint; never the latest one of an active run (it resumes from it).

    The row is flagged deleted and the folder renamed out of ``checkpoints/step-N``
    (one rename), so the page, retention and the resume picker stop seeing it at once;
    removing gigabytes of shards is a task on queue ``cpu``.
    """
    from worker.checkpoint_tasks import delete_checkpoint_task

    run, ckpt = _checkpoint(request, run_id, checkpoint_id)
    latest = run.checkpoints.filter(deleted=False).order_by("-step").first()
    if run.is_active and latest and latest.pk == ckpt.pk:
        messages.error(request, "The latest checkpoint of an active run cannot be deleted.")
        return _back(run)
    if ckpt.export_state in (Checkpoint.ExportState.QUEUED, Checkpoint.ExportState.RUNNING):
        messages.error(request, "This checkpoint is being exported; delete it afterwards.")
        return _back(run)
    try:
        checkpoint_folder(run.run_dir, ckpt.path)
    except PathEscapeError:
        messages.error(request, "Checkpoint path is not a folder of this run; not deleted.")
        return _back(run)
    with transaction.atomic():
        # Conditional update: of two clicks (or tabs), one deletes, the other is told.
        if not Checkpoint.objects.filter(pk=ckpt.pk, deleted=False).update(deleted=True):
            messages.error(request, f"Checkpoint of step {ckpt.step} is already deleted.")
            return _back(run)
        try:
            move_to_trash(run.run_dir, ckpt)
        except (OSError, PathEscapeError):  # e.g. permissions, or a symlink planted since
            transaction.set_rollback(True)  # the folder is still in place: keep its row
            log.exception("run %s: could not move %s aside", run.pk, ckpt.path)
            messages.error(request, f"Checkpoint of step {ckpt.step} could not be deleted.")
            return _back(run)
        transaction.on_commit(lambda: delete_checkpoint_task.apply_async((ckpt.pk,), queue="cpu"))
    messages.success(request, f"Checkpoint of step {ckpt.step} deleted.")
    return _back(run)


@json_view("GET")
def files(request: HttpRequest, run_id: int, checkpoint_id: int) -> HttpResponse:
    """Names and sizes in a checkpoint folder, or a subfolder of it (``?path=``)."""
    run, ckpt = _checkpoint(request, run_id, checkpoint_id)
    sub = request.GET.get("path", "")
    try:
        root = resolve_inside(run.run_dir, ckpt.path)
        folder = resolve_inside(root, sub)
    except PathEscapeError as exc:
        raise BadRequest(str(exc), field="path") from None
    if not folder.is_dir():
        raise BadRequest(f"not a folder: {sub!r}", status=404, field="path")
    relative = "" if folder == root else folder.relative_to(root).as_posix()
    return JsonResponse({"path": relative, "files": list_folder(folder)})


def list_folder(folder: Path) -> list[dict[str, object]]:
    """Entries of ``folder``: name, size in bytes, kind; symlinks are listed, never followed."""
    entries = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        st = entry.lstat()
        kind = "link" if entry.is_symlink() else "dir" if entry.is_dir() else "file"
        entries.append(
            {"name": entry.name, "bytes": st.st_size if kind == "file" else None, "kind": kind}
        )
    return entries


def stream_tar(folder: Path, prefix: str) -> Iterator[bytes]:
    """A ustar archive of the regular files under ``folder``, produced chunk by chunk.

    tarfile's own writer would buffer each member whole; multi-gigabyte safetensors
    must not sit in memory, so headers come from TarInfo and data is copied in chunks.
    """
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        info = tarfile.TarInfo(f"{prefix}/{path.relative_to(folder).as_posix()}")
        stat = path.stat()
        info.size, info.mtime, info.mode = stat.st_size, int(stat.st_mtime), 0o644
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        sent = 0
        with path.open("rb") as f:
            # Never send more than the header promised, even if the file grew.
            while sent < info.size and (chunk := f.read(min(STREAM_CHUNK, info.size - sent))):
                sent += len(chunk)
                yield chunk
        if sent < info.size:  # the file shrank: pad so the archive stays well-formed
            yield b"\0" * (info.size - sent)
        if info.size % tarfile.BLOCKSIZE:
            yield b"\0" * (tarfile.BLOCKSIZE - info.size % tarfile.BLOCKSIZE)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)


def _sample_input(post) -> tuple[str, dict[str, float | int]]:
    """The prompt and generation parameters from the form, validated."""
    prompt = post.get("prompt", "")
    if not prompt.strip():
        raise BadRequest("prompt: enter some text to continue")
    if len(prompt) > PROMPT_MAX_CHARS:
        raise BadRequest(f"prompt: at most {PROMPT_MAX_CHARS} characters")
    params: dict[str, float | int] = {
        "max_new_tokens": _number(post, "max_new_tokens", int, 64, 1, MAX_NEW_TOKENS),
        "temperature": _number(post, "temperature", float, 0.8, 0.0, 2.0),
        "top_p": _number(post, "top_p", float, 0.95, 0.01, 1.0),
    }
    return prompt, params


def _number(post, name: str, cast: type, default: float, lo: float, hi: float) -> float | int:
    raw = post.get(name, "").strip()
    if not raw:
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise BadRequest(f"{name}: {raw!r} is not a number") from None
    if not lo <= value <= hi:
        raise BadRequest(f"{name}: must be between {lo} and {hi}")
    return value
