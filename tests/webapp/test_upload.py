"""Chunked, resumable upload: offsets, resume, sha256, limits, quota, file names, CSRF."""

from __future__ import annotations

import hashlib
import json

import pytest

from webapp.datasets.models import Dataset
from webapp.datasets.upload import sanitize_filename
from worker.datasets import validate_dataset

pytestmark = pytest.mark.django_db

CONTENT = b"".join(
    json.dumps({"text": f"document number {i}"}).encode() + b"\n" for i in range(400)
)
SIZE = len(CONTENT)


def start(client, size=SIZE, filename="corpus.jsonl", **extra):
    body = {"filename": filename, "size": size, "name": "My corpus", **extra}
    return client.post("/datasets/uploads/", json.dumps(body), content_type="application/json")


def put(client, pk, offset, data):
    return client.put(
        f"/datasets/{pk}/chunk/?offset={offset}", data, content_type="application/octet-stream"
    )


def complete(client, pk, sha):
    return client.post(
        f"/datasets/{pk}/complete/", json.dumps({"sha256": sha}), content_type="application/json"
    )


@pytest.fixture(autouse=True)
def _small_chunks(settings):
    settings.UPLOAD_CHUNK_BYTES = 4096


def test_chunks_in_order_build_the_file_and_completion_queues_validation(
    alice_client, django_capture_on_commit_callbacks
):
    response = start(alice_client)
    assert response.status_code == 201
    pk = response.json()["id"]
    assert response.json()["received_bytes"] == 0
    for offset in range(0, len(CONTENT), 4096):
        r = put(alice_client, pk, offset, CONTENT[offset : offset + 4096])
        assert r.status_code == 200, r.content
        assert r.json()["received_bytes"] == min(len(CONTENT), offset + 4096)
    with django_capture_on_commit_callbacks() as callbacks:
        r = complete(alice_client, pk, hashlib.sha256(CONTENT).hexdigest())
    assert r.status_code == 200
    assert r.json()["state"] == "validating"
    assert len(callbacks) == 1  # the validation task is sent once the state change commits
    dataset = Dataset.objects.get(pk=pk)
    assert dataset.partial_path.read_bytes() == CONTENT


def test_an_out_of_order_chunk_is_refused_with_the_expected_offset(alice_client):
    pk = start(alice_client).json()["id"]
    assert put(alice_client, pk, 0, CONTENT[:4096]).status_code == 200
    r = put(alice_client, pk, 8192, CONTENT[8192:12288])
    assert r.status_code == 409
    assert r.json()["expected_offset"] == 4096
    # A repeated chunk (its answer was lost) is refused too and nothing is appended twice.
    assert put(alice_client, pk, 0, CONTENT[:4096]).status_code == 409
    assert Dataset.objects.get(pk=pk).partial_path.stat().st_size == 4096


def test_an_interrupted_upload_resumes_from_the_last_stored_chunk(alice_client):
    pk = start(alice_client).json()["id"]
    put(alice_client, pk, 0, CONTENT[:4096])
    put(alice_client, pk, 4096, CONTENT[4096:8192])
    dataset = Dataset.objects.get(pk=pk)
    # The server died while writing a third chunk it never acknowledged.
    with dataset.partial_path.open("ab") as f:
        f.write(CONTENT[8192:9000])
    # The reloaded page starts the same file again: it gets the same dataset and its offset.
    again = start(alice_client)
    assert again.json()["id"] == pk
    assert again.json()["received_bytes"] == 8192
    assert alice_client.get(f"/datasets/{pk}/status/").json()["received_bytes"] == 8192
    for offset in range(8192, len(CONTENT), 4096):
        assert put(alice_client, pk, offset, CONTENT[offset : offset + 4096]).status_code == 200
    assert complete(alice_client, pk, hashlib.sha256(CONTENT).hexdigest()).status_code == 200
    assert Dataset.objects.get(pk=pk).partial_path.read_bytes() == CONTENT


def test_completion_before_every_byte_arrived_is_refused(alice_client):
    pk = start(alice_client).json()["id"]
    put(alice_client, pk, 0, CONTENT[:4096])
    r = complete(alice_client, pk, hashlib.sha256(CONTENT).hexdigest())
    assert r.status_code == 409
    assert r.json()["expected_offset"] == 4096


def test_a_sha256_mismatch_rejects_the_dataset_and_drops_the_file(alice_client):
    pk = start(alice_client).json()["id"]
    for offset in range(0, len(CONTENT), 4096):
        put(alice_client, pk, offset, CONTENT[offset : offset + 4096])
    wrong = hashlib.sha256(b"something else").hexdigest()
    assert complete(alice_client, pk, wrong).status_code == 200
    assert validate_dataset(pk) == "rejected"
    dataset = Dataset.objects.get(pk=pk)
    assert dataset.state == "rejected"
    assert "sha256 mismatch" in dataset.error
    assert not dataset.partial_path.exists() and not dataset.file_path.exists()
    status = alice_client.get(f"/datasets/{pk}/status/").json()
    assert status["state"] == "rejected" and "sha256" in status["error"]


def test_a_malformed_sha256_is_refused(alice_client):
    pk = start(alice_client, size=10).json()["id"]
    put(alice_client, pk, 0, b"0123456789")
    r = complete(alice_client, pk, "not-a-hash")
    assert r.status_code == 400
    assert "sha256" in r.json()["error"]


def test_an_oversize_file_is_refused_before_any_byte_is_sent(alice_client, settings):
    settings.UPLOAD_MAX_BYTES = 1000
    r = start(alice_client, size=1001)
    assert r.status_code == 413
    assert "larger than the limit" in r.json()["error"]
    assert not Dataset.objects.exists()


def test_a_chunk_past_the_declared_size_or_over_the_chunk_limit_is_refused(alice_client):
    pk = start(alice_client, size=10).json()["id"]
    assert put(alice_client, pk, 0, b"x" * 11).status_code == 413
    pk2 = start(alice_client, size=100_000, filename="big.jsonl").json()["id"]
    r = put(alice_client, pk2, 0, b"x" * 4097)
    assert r.status_code == 413
    assert "chunk limit" in r.json()["error"]


def test_a_disallowed_extension_is_refused_naming_the_allowed_ones(alice_client):
    r = start(alice_client, filename="corpus.exe")
    assert r.status_code == 400
    assert ".jsonl" in r.json()["error"] and r.json()["field"] == "filename"


def test_the_per_user_quota_is_enforced(alice_client, settings):
    settings.UPLOAD_USER_QUOTA_BYTES = 15_000
    assert start(alice_client, size=10_000, filename="a.jsonl").status_code == 201
    r = start(alice_client, size=10_000, filename="b.jsonl")
    assert r.status_code == 413
    assert "quota" in r.json()["error"]


def test_bad_sizes_are_refused_naming_the_field(alice_client):
    for size in (0, -5, "12", 1.5, True):
        r = start(alice_client, size=size)
        assert r.status_code == 400, size
        assert r.json()["error"].startswith("size:")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd.jsonl", "passwd.jsonl"),
        ("C:\\Users\\x\\data.jsonl", "data.jsonl"),
        ("my corpus (1).jsonl", "my_corpus_1_.jsonl"),
        ("..", ""),
    ],
)
def test_file_names_from_the_browser_are_reduced_to_a_safe_base_name(raw, clean):
    assert sanitize_filename(raw) == clean


def test_the_stored_file_lives_under_the_dataset_folder_whatever_the_name(alice_client, settings):
    pk = start(alice_client, filename="../../../../tmp/evil.jsonl").json()["id"]
    dataset = Dataset.objects.get(pk=pk)
    assert dataset.filename == "evil.jsonl"
    assert dataset.partial_path.parent == settings.MEDIA_ROOT / "datasets" / str(pk)


def test_upload_endpoints_require_the_csrf_token(alice):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(alice)
    assert start(csrf_client).status_code == 403
    pk = start(client_for(alice)).json()["id"]
    assert put(csrf_client, pk, 0, CONTENT[:100]).status_code == 403
    assert Dataset.objects.get(pk=pk).received_bytes == 0
    # With the token from the page, the same client may upload.
    csrf_client.get("/datasets/")
    token = csrf_client.cookies["csrftoken"].value
    r = csrf_client.put(
        f"/datasets/{pk}/chunk/?offset=0",
        CONTENT[:100],
        content_type="application/octet-stream",
        headers={"X-CSRFToken": token},
    )
    assert r.status_code == 200


def client_for(user):
    from django.test import Client

    c = Client()
    c.force_login(user)
    return c
