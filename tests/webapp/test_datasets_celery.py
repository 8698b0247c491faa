"""A finished upload is validated by a real Celery worker, never in the request."""

from __future__ import annotations

import hashlib

import pytest
import redis
from django.conf import settings

from tests.stack import celery_worker_args, process, wait_for
from webapp.datasets.models import Dataset


@pytest.mark.slow
def test_a_real_worker_validates_a_completed_upload(
    transactional_db, alice_client, demo_corpus, tmp_path
):
    redis.Redis.from_url(settings.REDIS_URL).delete("cpu")  # no stale tasks from earlier runs
    content = demo_corpus.read_bytes()
    pk = alice_client.post(
        "/datasets/uploads/",
        {"filename": "docs.jsonl", "size": len(content)},
        content_type="application/json",
    ).json()["id"]
    chunk = settings.UPLOAD_CHUNK_BYTES
    for offset in range(0, len(content), chunk):
        alice_client.put(
            f"/datasets/{pk}/chunk/?offset={offset}",
            content[offset : offset + chunk],
            content_type="application/octet-stream",
        )
    with process(celery_worker_args("datasets", queues="cpu", concurrency=1), tmp_path / "w.log"):
        response = alice_client.post(
            f"/datasets/{pk}/complete/",
            {"sha256": hashlib.sha256(content).hexdigest()},
            content_type="application/json",
        )
        assert response.json()["state"] == "validating"  # the request did not validate
        state = wait_for(
            lambda: (
                Dataset.objects.get(pk=pk).state in ("ready", "rejected")
                and Dataset.objects.get(pk=pk).state
            ),
            timeout=90,
            what="the worker to validate the dataset",
        )
    log = (tmp_path / "w.log").read_text()
    assert state == "ready", log
    dataset = Dataset.objects.get(pk=pk)
    assert dataset.stats["documents"] == 500
    assert alice_client.get(f"/datasets/{pk}/status/").json()["state"] == "ready"
