"""The workers page: live workers, their GPUs, and only the runs the user may see."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from webapp.runs.models import Run, WorkerHost

from .helpers import make_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def gpu_worker():
    return WorkerHost.objects.create(
        name="gpu1@node7",
        host="node7",
        gpus=[{"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_gb": 79.1}],
        queues=["gpu"],
        last_seen=timezone.now(),
    )


def test_it_lists_live_workers_with_their_gpus(alice_client, gpu_worker):
    body = alice_client.get("/workers/").content.decode()
    assert "gpu1@node7" in body and "node7" in body
    assert "NVIDIA H100 80GB HBM3 · 79.1 GiB" in body


def test_it_hides_workers_not_seen_within_the_lost_limit(alice_client, gpu_worker, settings):
    old = timezone.now() - timedelta(seconds=settings.RUN_LOST_AFTER_SECONDS + 1)
    WorkerHost.objects.filter(pk=gpu_worker.pk).update(last_seen=old)
    body = alice_client.get("/workers/").content.decode()
    assert "gpu1@node7" not in body and "No worker is alive" in body


def test_it_shows_what_a_worker_runs_but_not_other_users_runs(alice_client, alice, bob, gpu_worker):
    make_run(alice, name="alice-cpt", state=Run.State.RUNNING, worker_name="gpu1@node7")
    make_run(bob, name="bob-secret", state=Run.State.RUNNING, worker_name="gpu1@node7")
    body = alice_client.get("/workers/").content.decode()
    assert "alice-cpt" in body
    assert "bob-secret" not in body


def test_staff_see_every_users_runs(client, staff, bob, gpu_worker):
    make_run(bob, name="bob-run", state=Run.State.RUNNING, worker_name="gpu1@node7")
    client.force_login(staff)
    assert "bob-run" in client.get("/workers/").content.decode()


def test_anonymous_users_are_sent_to_login(client, gpu_worker):
    response = client.get("/workers/")
    assert response.status_code == 302 and "gpu1@node7" not in response.content.decode()
