"""Claims: a queued run goes to one worker only; lost-marking and re-attach are conditional."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.utils import timezone

from webapp.runs.models import Run
from worker.claim import claim_reattach, claim_run, mark_lost

from .helpers import make_run


@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_at_once_get_the_run_once(alice):
    run = make_run(alice)
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def claim(i: int) -> None:
        barrier.wait()
        try:
            results.append(claim_run(run.pk, f"w{i}@h", "h"))
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
    run.refresh_from_db()
    assert run.state == Run.State.STARTING
    assert run.attempt == 1
    assert run.worker_name.startswith("w")


@pytest.mark.django_db
def test_a_run_that_is_not_queued_is_not_claimed(alice):
    run = make_run(alice, state=Run.State.STOPPED)
    assert not claim_run(run.pk, "w@h", "h")
    run.refresh_from_db()
    assert run.state == Run.State.STOPPED and run.worker_name == ""


@pytest.mark.django_db
def test_reattach_fails_when_someone_beat_the_heartbeat_since(alice):
    seen = timezone.now()
    run = make_run(alice, state=Run.State.RUNNING, worker_name="old@h", host="h", heartbeat_at=seen)
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())
    assert not claim_reattach(run.pk, "new@h", "h", "old@h", seen)
    fresh = Run.objects.get(pk=run.pk)
    assert claim_reattach(run.pk, "new@h", "h", "old@h", fresh.heartbeat_at)
    assert Run.objects.get(pk=run.pk).worker_name == "new@h"


@pytest.mark.django_db
def test_mark_lost_only_applies_to_the_heartbeat_that_was_seen(alice):
    seen = timezone.now()
    run = make_run(alice, state=Run.State.RUNNING, heartbeat_at=seen)
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now())
    assert not mark_lost(run.pk, seen, "lost")
    assert mark_lost(run.pk, Run.objects.get(pk=run.pk).heartbeat_at, "lost")
    assert Run.objects.get(pk=run.pk).state == Run.State.LOST
