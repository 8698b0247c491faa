"""The run list: columns, ETA and duration, state filter, pagination."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.webapp.web_factories import make_dataset, make_model, make_run
from webapp.runs import listing
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db


def test_the_list_shows_progress_losses_throughput_and_times(alice_client, alice):
    now = timezone.now()
    run = make_run(
        alice, "pretrain-law", state=Run.State.RUNNING, step=250, total_steps=1000,
        last_loss=2.34567, last_val_loss=2.41234, tokens_per_s=40960.0,
        started_at=now - timedelta(minutes=10),
    )  # fmt: skip
    body = alice_client.get("/").content.decode()
    assert "pretrain-law" in body and f'href="/runs/{run.pk}/"' in body
    assert "250 / 1000" in body
    assert "2.3457" in body and "2.4123" in body and "40960" in body
    assert "alice" in body and "state-running" in body
    row = listing.list_row(run, now)
    # 750 steps left of 1024 * 4 tokens each (seq_len * micro batch, one rank) at 40960 tokens/s.
    assert row["eta_seconds"] == pytest.approx(750 * 4096 / 40960)
    assert row["eta"] == "1m 15s"
    assert row["duration"] == "10m 00s"


def test_eta_falls_back_to_the_step_rate_and_is_empty_when_not_running(alice):
    now = timezone.now()
    run = make_run(
        alice, "a", state=Run.State.RUNNING, step=100, total_steps=400,
        started_at=now - timedelta(seconds=100),
    )  # fmt: skip
    assert listing.eta_seconds(run, now) == pytest.approx(300)
    run.state = Run.State.COMPLETED
    run.finished_at = now - timedelta(seconds=40)
    assert listing.eta_seconds(run, now) is None
    assert listing.duration_seconds(run, now) == pytest.approx(60)


def test_the_list_filters_by_state(alice_client, alice):
    model, data = make_model(alice), make_dataset(alice)
    for name, state in [("r1", "running"), ("r2", "failed"), ("r3", "queued"), ("r4", "completed")]:
        make_run(alice, name, state=state, base_model=model, datasets=[data])
    names = lambda response: [r["name"] for r in response.context["rows"]]  # noqa: E731
    assert names(alice_client.get("/?state=failed")) == ["r2"]
    assert sorted(names(alice_client.get("/?state=active"))) == ["r1", "r3"]
    assert len(names(alice_client.get("/"))) == 4
    assert len(names(alice_client.get("/?state=bogus"))) == 4


def test_the_list_is_paginated(alice_client, alice):
    model, data = make_model(alice), make_dataset(alice)
    for i in range(listing.PAGE_SIZE + 3):
        make_run(alice, f"run-{i:02d}", base_model=model, datasets=[data])
    first = alice_client.get("/")
    assert len(first.context["rows"]) == listing.PAGE_SIZE
    assert "page 1 of 2" in first.content.decode()
    second = alice_client.get("/?page=2")
    assert len(second.context["rows"]) == 3
    assert alice_client.get("/?page=999").context["page"].number == 2


def test_users_see_only_their_runs_and_staff_see_everyones(client, alice, bob, staff):
    make_run(alice, "alices")
    make_run(bob, "bobs")
    client.force_login(alice)
    assert [r["name"] for r in client.get("/").context["rows"]] == ["alices"]
    client.force_login(staff)
    assert sorted(r["name"] for r in client.get("/").context["rows"]) == ["alices", "bobs"]
