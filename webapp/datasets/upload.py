"""Chunked, resumable upload of a corpus file: the protocol and its plain functions.

Protocol (all JSON, session auth, CSRF token in the ``X-CSRFToken`` header):

1. ``POST /datasets/uploads/`` with ``{"name", "filename", "size", "text_field"?}``
   creates a dataset in state ``uploading`` and answers
   ``{"id", "received_bytes": 0, "chunk_bytes", ...}``. Size limit, allowed
   extensions and the per-user quota are checked here, before any byte is sent.
   If the same user already has an unfinished upload with the same file name and
   size, that one is returned instead, so a reloaded page resumes it.
2. ``PUT /datasets/<id>/chunk/?offset=N`` with the raw bytes as the body
   (``application/octet-stream``, at most ``UPLOAD_CHUNK_BYTES``). The server
   appends only when ``N == received_bytes`` (else 409 with ``expected_offset``),
   streaming the body into the partial file opened in append mode, so memory stays
   flat whatever the file size. Answers ``{"received_bytes"}``.
3. ``GET /datasets/<id>/status/`` gives ``received_bytes`` and the state, so an
   interrupted upload (closed tab, dropped connection, server restart) continues
   from the last stored chunk.
4. ``POST /datasets/<id>/complete/`` with ``{"sha256"}`` (hex, computed by the
   browser over the whole file) once every byte is stored: the dataset moves to
   ``validating`` and a worker task hashes the stored file (streaming, so nothing
   depends on state kept in a web process across restarts), refuses a mismatch,
   then validates and profiles the corpus.

The partial file's size on disk is the truth for ``received_bytes``: a chunk that
was half written when the server died is cut back to the size recorded in the row.

An upload that receives no chunk for ``UPLOAD_ABANDON_HOURS`` is deleted with its
partial file by :mod:`webapp.datasets.cleanup` (Celery beat, hourly), so it stops
counting against the quota; a later chunk for it gets 404.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from webapp.datasets.models import Dataset
from webapp.jsonapi import BadRequest

COPY_BLOCK = 1024 * 1024
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class UploadError(BadRequest):
    """A refused upload step; ``status`` is the HTTP status, ``extra`` goes into the JSON."""


@dataclass(frozen=True)
class NewUpload:
    """What the browser declares when an upload begins (validated by :func:`parse_new_upload`)."""

    name: str
    filename: str
    size: int
    text_field: str


def sanitize_filename(raw: str) -> str:
    """A safe base name: no directories, no control or shell characters, at most 200 chars."""
    name = unicodedata.normalize("NFKC", raw or "").replace("\\", "/").split("/")[-1]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return name[-200:] if name else ""


def allowed_extension(filename: str) -> str | None:
    """The configured extension ``filename`` ends with, or None."""
    lower = filename.lower()
    for ext in sorted(settings.UPLOAD_EXTENSIONS, key=len, reverse=True):
        if lower.endswith(ext.lower()):
            return ext
    return None


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def parse_new_upload(data: object) -> NewUpload:
    """Check the JSON that starts an upload; errors name the field."""
    if not isinstance(data, dict):
        raise UploadError("body must be a JSON object")
    filename = sanitize_filename(str(data.get("filename") or ""))
    if not filename:
        raise UploadError("filename: required", field="filename")
    if allowed_extension(filename) is None:
        allowed = ", ".join(settings.UPLOAD_EXTENSIONS)
        raise UploadError(
            f"filename: {filename!r} has an extension that is not allowed (allowed: {allowed})",
            field="filename",
        )
    size = data.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise UploadError("size: must be a positive integer (bytes)", field="size")
    if size > settings.UPLOAD_MAX_BYTES:
        raise UploadError(
            f"size: the file is {_human(size)}, larger than the limit of "
            f"{_human(settings.UPLOAD_MAX_BYTES)}",
            status=413,
            field="size",
        )
    name = str(data.get("name") or "").strip() or filename
    if len(name) > 200:
        raise UploadError("name: at most 200 characters", field="name")
    text_field = str(data.get("text_field") or "text").strip()
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", text_field):
        raise UploadError(
            "text_field: letters, digits, '_', '.', '-' only (1-100 chars)", field="text_field"
        )
    return NewUpload(name=name, filename=filename, size=size, text_field=text_field)


def used_bytes(user) -> int:
    """Bytes the user's datasets hold or have reserved (rejected ones keep no file)."""
    kept = Dataset.objects.filter(owner=user).exclude(state=Dataset.State.REJECTED)
    total = kept.aggregate(s=Sum("size_bytes"))["s"]
    return int(total or 0)


def start_upload(user, new: NewUpload) -> Dataset:
    """Create the dataset row and its empty partial file, or resume the matching unfinished one."""
    existing = (
        Dataset.objects.filter(
            owner=user,
            filename=new.filename,
            size_bytes=new.size,
            state=Dataset.State.UPLOADING,
        )
        .order_by("-created_at")
        .first()
    )
    if existing is not None:
        return sync_received_bytes(existing)
    with transaction.atomic():
        # Lock the user's rows so two parallel starts cannot both pass the quota check.
        list(Dataset.objects.select_for_update().filter(owner=user).values_list("pk", flat=True))
        quota = settings.UPLOAD_USER_QUOTA_BYTES
        used = used_bytes(user)
        if used + new.size > quota:
            raise UploadError(
                f"size: this upload ({_human(new.size)}) would exceed your quota of "
                f"{_human(quota)} ({_human(used)} used); delete datasets to make room",
                status=413,
                field="size",
            )
        dataset = Dataset.objects.create(
            owner=user,
            name=new.name,
            filename=new.filename,
            size_bytes=new.size,
            text_field=new.text_field,
            sha256="",
        )
    dataset.storage_dir.mkdir(parents=True, exist_ok=True)
    dataset.partial_path.touch()
    return dataset


def sync_received_bytes(dataset: Dataset) -> Dataset:
    """Make the row and the partial file agree after a crash: the row is what was acknowledged."""
    path = dataset.partial_path
    path.parent.mkdir(parents=True, exist_ok=True)
    on_disk = path.stat().st_size if path.exists() else 0
    if on_disk > dataset.received_bytes:
        # A chunk was being written when the process died and never acknowledged: drop it.
        with path.open("r+b") as f:
            f.truncate(dataset.received_bytes)
    elif on_disk < dataset.received_bytes:
        # The acknowledged bytes are the ones on disk (e.g. the row was saved, the file lost).
        Dataset.objects.filter(pk=dataset.pk).update(received_bytes=on_disk)
        dataset.received_bytes = on_disk
    return dataset


def append_chunk(dataset_id: int, offset: int, body: BinaryIO, length: int) -> int:
    """Append ``length`` bytes read from ``body`` at ``offset``; return the new received size.

    The row is locked for the write, so two requests for the same offset cannot both append.
    """
    if length <= 0:
        raise UploadError("chunk: empty body", field="chunk")
    if length > settings.UPLOAD_CHUNK_BYTES:
        raise UploadError(
            f"chunk: {length} bytes is larger than the chunk limit of "
            f"{settings.UPLOAD_CHUNK_BYTES} bytes",
            status=413,
            field="chunk",
        )
    with transaction.atomic():
        dataset = Dataset.objects.select_for_update().filter(pk=dataset_id).first()
        if dataset is None:
            # Deleted while this request waited for the lock (by its owner, or expired as
            # abandoned by webapp.datasets.cleanup): the browser must start a new upload.
            raise UploadError("upload not found: it was deleted or expired", status=404)
        if dataset.state != Dataset.State.UPLOADING:
            raise UploadError(f"upload is {dataset.state}, not uploading", status=409)
        sync_received_bytes(dataset)
        if offset != dataset.received_bytes:
            raise UploadError(
                f"offset: expected {dataset.received_bytes}, got {offset}",
                status=409,
                expected_offset=dataset.received_bytes,
            )
        if offset + length > dataset.size_bytes:
            raise UploadError(
                f"chunk: ends at byte {offset + length}, past the declared size "
                f"{dataset.size_bytes}",
                status=413,
                field="chunk",
            )
        written = 0
        with dataset.partial_path.open("ab") as f:
            while written < length:
                block = body.read(min(COPY_BLOCK, length - written))
                if not block:
                    break
                f.write(block)
                written += len(block)
        if written != length:
            # The connection dropped mid-chunk: keep only what was acknowledged before.
            with dataset.partial_path.open("r+b") as f:
                f.truncate(offset)
            raise UploadError(
                f"chunk: received {written} of {length} bytes", status=400, field="chunk"
            )
        dataset.received_bytes = offset + length
        # update() skips auto_now, so set updated_at here: it is the upload's last activity,
        # which webapp.datasets.cleanup reads to expire abandoned uploads.
        Dataset.objects.filter(pk=dataset.pk).update(
            received_bytes=dataset.received_bytes, updated_at=timezone.now()
        )
    return dataset.received_bytes


def complete_upload(dataset: Dataset, sha256: object) -> Dataset:
    """Record the browser's sha256 and hand the file to validation (hash checked by the task)."""
    if not isinstance(sha256, str) or not SHA256_RE.match(sha256.lower()):
        raise UploadError("sha256: must be 64 hex characters", field="sha256")
    dataset = sync_received_bytes(dataset)
    if dataset.received_bytes != dataset.size_bytes:
        raise UploadError(
            f"upload incomplete: {dataset.received_bytes} of {dataset.size_bytes} bytes stored",
            status=409,
            expected_offset=dataset.received_bytes,
        )
    changed = Dataset.objects.filter(pk=dataset.pk, state=Dataset.State.UPLOADING).update(
        state=Dataset.State.VALIDATING, sha256=sha256.lower(), error=""
    )
    if changed != 1:
        raise UploadError("upload already completed", status=409)
    dataset.refresh_from_db()
    queue_validation(dataset)
    return dataset


def queue_validation(dataset: Dataset) -> None:
    """Send the validation task once the state change is committed (the worker must see it)."""
    from worker.dataset_tasks import validate_dataset_task

    pk = dataset.pk
    transaction.on_commit(lambda: validate_dataset_task.apply_async(args=[pk], queue="cpu"))
