"""Dataset validation states, the dataset page and its status endpoint, deletion."""

from __future__ import annotations

import hashlib
import json

import pytest

from webapp.datasets.models import Dataset
from worker.datasets import validate_dataset

pytestmark = pytest.mark.django_db


def uploaded(owner, content: bytes, filename: str = "c.jsonl") -> Dataset:
    """A dataset whose bytes all arrived and whose completion was posted (state validating)."""
    d = Dataset.objects.create(
        owner=owner,
        name=filename,
        filename=filename,
        size_bytes=len(content),
        received_bytes=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        state=Dataset.State.VALIDATING,
    )
    d.storage_dir.mkdir(parents=True)
    d.partial_path.write_bytes(content)
    return d


def lines(*objs) -> bytes:
    return b"".join((o if isinstance(o, bytes) else json.dumps(o).encode()) + b"\n" for o in objs)


def test_a_good_corpus_becomes_ready_with_its_profile(alice, demo_corpus):
    d = uploaded(alice, demo_corpus.read_bytes())
    assert validate_dataset(d.pk) == "ready"
    d.refresh_from_db()
    assert d.state == "ready" and d.error == ""
    assert d.stats["documents"] == 500
    assert d.stats["bytes"] == demo_corpus.stat().st_size
    assert d.stats["estimated_tokens"] > 500
    assert len(d.stats["samples"]) == 5
    assert d.file_path.exists() and not d.partial_path.exists()
    assert str(d.storage_dir) not in json.dumps(d.stats)  # no server paths leak to the page


def test_a_few_bad_lines_are_listed_with_line_numbers_and_excerpts(alice_client, alice):
    good = [{"text": f"document {i} is fine"} for i in range(98)]
    content = lines(*good[:10], b"{not json", *good[10:50], {"title": "no text"}, *good[50:])
    d = uploaded(alice, content)
    assert validate_dataset(d.pk) == "ready"
    d.refresh_from_db()
    shown = d.stats["bad_lines_shown"]
    assert [(b["kind"], b["line"]) for b in shown] == [("invalid_json", 11), ("missing_field", 52)]
    page = alice_client.get(f"/datasets/{d.pk}/").content.decode()
    assert "invalid_json" in page and "{not json" in page and ">52<" in page


def test_a_corpus_of_mostly_bad_lines_is_rejected_saying_why(alice):
    d = uploaded(alice, lines({"text": "ok"}, b"\xff\xfe broken", b"[1, 2]", {"body": "x"}))
    assert validate_dataset(d.pk) == "rejected"
    d.refresh_from_db()
    assert "bad lines" in d.error and "exceed" in d.error
    assert d.stats["bad"] == {"invalid_utf8": 1, "not_object": 1, "missing_field": 1}
    assert not d.file_path.exists()


def test_a_corpus_without_the_text_field_is_rejected(alice):
    d = uploaded(alice, lines({"body": "a"}, {"body": "b"}))
    assert validate_dataset(d.pk) == "rejected"
    d.refresh_from_db()
    assert "no valid documents" in d.error


def test_validation_of_a_dataset_not_in_validating_state_changes_nothing(alice):
    d = uploaded(alice, lines({"text": "a"}))
    Dataset.objects.filter(pk=d.pk).update(state=Dataset.State.UPLOADING)
    assert validate_dataset(d.pk) == "uploading"
    assert d.partial_path.exists()


def test_the_status_endpoint_and_page_follow_the_states(alice_client, alice):
    d = uploaded(alice, lines({"text": "hello there"}))
    status = alice_client.get(f"/datasets/{d.pk}/status/").json()
    assert status["state"] == "validating"
    page = alice_client.get(f"/datasets/{d.pk}/").content.decode()
    assert f'data-poll-url="/datasets/{d.pk}/status/"' in page
    validate_dataset(d.pk)
    assert alice_client.get(f"/datasets/{d.pk}/status/").json()["state"] == "ready"
    listing = alice_client.get("/datasets/").content.decode()
    assert "state-ready" in listing and d.name in listing


def test_deleting_a_dataset_removes_its_file(alice_client, alice):
    d = uploaded(alice, lines({"text": "hello"}))
    validate_dataset(d.pk)
    response = alice_client.post(f"/datasets/{d.pk}/delete/")
    assert response.status_code == 302
    assert not Dataset.objects.filter(pk=d.pk).exists()
    assert not d.storage_dir.exists()


def test_a_dataset_used_by_a_run_cannot_be_deleted(alice_client, alice):
    from webapp.runs.models import Run, RunDataset

    d = uploaded(alice, lines({"text": "hello"}))
    validate_dataset(d.pk)
    run = Run.objects.create(owner=alice, name="r", config={}, state=Run.State.COMPLETED)
    RunDataset.objects.create(run=run, dataset=d)
    response = alice_client.post(f"/datasets/{d.pk}/delete/", follow=True)
    assert f"used by run(s) #{run.pk}" in response.content.decode()
    assert Dataset.objects.filter(pk=d.pk).exists() and d.file_path.exists()


def test_delete_needs_post(alice_client, alice):
    d = uploaded(alice, lines({"text": "hello"}))
    assert alice_client.get(f"/datasets/{d.pk}/delete/").status_code == 405
