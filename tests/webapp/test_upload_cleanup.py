"""Abandoned uploads: expired with their files after UPLOAD_ABANDON_HOURS, quota freed."""

from __future__ import annotations

import datetime
import io
import json
import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from webapp.datasets.cleanup import expire_abandoned_uploads
from webapp.datasets.models import Dataset
from webapp.datasets.upload import UploadError, append_chunk, used_bytes

pytestmark = pytest.mark.django_db

CHUNK = b'{"text": "a document"}\n' * 100


def start_upload(client, size: int = 10 * len(CHUNK), filename: str = "corpus.jsonl") -> int:
    """An upload begun through the endpoint, with its first chunk stored; returns its id."""
    body = {"filename": filename, "size": size, "name": filename}
    r = client.post("/datasets/uploads/", json.dumps(body), content_type="application/json")
    assert r.status_code == 201, r.content
    pk = r.json()["id"]
    r = put(client, pk, 0, CHUNK)
    assert r.status_code == 200, r.content
    return pk


def put(client, pk: int, offset: int, data: bytes):
    return client.put(
        f"/datasets/{pk}/chunk/?offset={offset}", data, content_type="application/octet-stream"
    )


def age(pk: int, hours: float) -> None:
    """Make the upload's last activity ``hours`` old."""
    then = timezone.now() - datetime.timedelta(hours=hours)
    Dataset.objects.filter(pk=pk).update(updated_at=then)


def stored(owner, state: str, name: str) -> Dataset:
    """A finished dataset (validating or ready) with its file on disk, last touched long ago."""
    d = Dataset.objects.create(
        owner=owner,
        name=name,
        filename=f"{name}.jsonl",
        size_bytes=len(CHUNK),
        received_bytes=len(CHUNK),
        sha256="0" * 64,
        state=state,
    )
    d.storage_dir.mkdir(parents=True)
    path = d.partial_path if state == Dataset.State.VALIDATING else d.file_path
    path.write_bytes(CHUNK)
    age(d.pk, 24 * 365)
    return d


def test_an_abandoned_upload_is_deleted_with_its_file_and_frees_the_quota(alice_client, alice):
    ready = stored(alice, Dataset.State.READY, "kept")
    pk = start_upload(alice_client)
    upload = Dataset.objects.get(pk=pk)
    assert upload.partial_path.stat().st_size == len(CHUNK)
    assert used_bytes(alice) == ready.size_bytes + upload.size_bytes
    age(pk, 49)

    assert expire_abandoned_uploads() == [pk]

    assert not Dataset.objects.filter(pk=pk).exists()
    assert not upload.storage_dir.exists()
    assert used_bytes(alice) == ready.size_bytes
    assert put(alice_client, pk, len(CHUNK), CHUNK).status_code == 404
    assert expire_abandoned_uploads() == []  # nothing left to do on the next pass


def test_recent_uploads_and_finished_datasets_are_untouched(alice_client, alice, bob):
    fresh = start_upload(alice_client)
    age(fresh, 47)  # inside the default 48 hours
    ready = stored(alice, Dataset.State.READY, "ready")
    validating = stored(bob, Dataset.State.VALIDATING, "validating")
    rejected = stored(bob, Dataset.State.REJECTED, "rejected")

    assert expire_abandoned_uploads() == []

    assert Dataset.objects.get(pk=fresh).partial_path.stat().st_size == len(CHUNK)
    for d in (ready, validating, rejected):
        assert Dataset.objects.get(pk=d.pk).state == d.state
    assert ready.file_path.read_bytes() == CHUNK
    assert validating.partial_path.read_bytes() == CHUNK


def test_a_stored_chunk_restarts_the_clock(alice_client):
    pk = start_upload(alice_client)
    age(pk, 100)
    assert put(alice_client, pk, len(CHUNK), CHUNK).status_code == 200

    assert expire_abandoned_uploads() == []
    later = timezone.now() + datetime.timedelta(hours=49)
    assert expire_abandoned_uploads(now=later) == [pk]


def test_the_age_comes_from_the_setting(alice_client, settings):
    pk = start_upload(alice_client)
    age(pk, 3)
    assert expire_abandoned_uploads() == []
    settings.UPLOAD_ABANDON_HOURS = 2
    assert expire_abandoned_uploads() == [pk]


def test_a_chunk_for_an_upload_deleted_meanwhile_is_a_404(alice_client):
    pk = start_upload(alice_client)
    age(pk, 49)
    expire_abandoned_uploads()
    with pytest.raises(UploadError) as exc:
        append_chunk(pk, len(CHUNK), io.BytesIO(CHUNK), len(CHUNK))
    assert exc.value.status == 404


def test_the_page_says_when_unfinished_uploads_are_removed(alice_client, alice, settings):
    stored(alice, Dataset.State.READY, "ready")
    assert "abandon-note" not in alice_client.get("/datasets/").content.decode()
    start_upload(alice_client)
    settings.UPLOAD_ABANDON_HOURS = 12
    page = alice_client.get("/datasets/").content.decode()
    assert "removed after 12 hours" in page


def test_the_beat_task_runs_the_expiry(alice_client):
    from worker.dataset_tasks import expire_uploads_task

    pk = start_upload(alice_client)
    age(pk, 49)
    assert expire_uploads_task() == [pk]  # run in this process: the task body, no broker
    assert not Dataset.objects.filter(pk=pk).exists()


def test_beat_sends_the_expiry_hourly_on_the_cpu_queue():
    from worker.celery_app import app

    entries = [e for e in app.conf.beat_schedule.values() if e["task"] == "worker.expire_uploads"]
    assert len(entries) == 1
    assert entries[0]["schedule"] == 3600
    assert entries[0]["options"] == {"queue": "cpu", "expires": 3600}
    app.loader.import_default_modules()
    assert "worker.expire_uploads" in app.tasks


@pytest.mark.django_db(transaction=True)
def test_an_upload_locked_by_a_chunk_in_flight_is_skipped(alice_client):
    pk = start_upload(alice_client)
    age(pk, 49)
    locked, release = threading.Event(), threading.Event()

    def hold_row() -> None:
        # What append_chunk does while it writes a chunk: hold the row lock.
        try:
            with transaction.atomic():
                Dataset.objects.select_for_update().get(pk=pk)
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_row)
    holder.start()
    try:
        assert locked.wait(30)
        assert expire_abandoned_uploads() == []
        assert Dataset.objects.get(pk=pk).partial_path.exists()
    finally:
        release.set()
        holder.join(30)
    assert expire_abandoned_uploads() == [pk]


@pytest.mark.django_db(transaction=True)
def test_two_cleaners_at_once_expire_each_upload_once(alice_client):
    ids = sorted(start_upload(alice_client, filename=f"c{i}.jsonl") for i in range(6))
    for pk in ids:
        age(pk, 49)
    barrier = threading.Barrier(2)
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def clean() -> None:
        try:
            barrier.wait(30)
            results.append(expire_abandoned_uploads())
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=clean) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(results[0] + results[1]) == ids  # every upload expired, none twice
    assert not Dataset.objects.filter(pk__in=ids).exists()
