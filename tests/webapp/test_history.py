"""History for the charts: downsampled in SQL with extremes kept, and the reconnect path."""

from __future__ import annotations

import pytest

from tests.webapp.runpage_helpers import add_metrics, make_run
from webapp.runs.history import load_history
from webapp.runs.models import Metric, Run

pytestmark = pytest.mark.django_db


def _metric_points(data):
    return [p for p in data["metrics"] if p["kind"] == "metric"]


def test_it_returns_every_point_when_under_the_limit(alice):
    run = make_run(alice)
    add_metrics(run, range(1, 301))
    add_metrics(run, range(100, 301, 100), kind=Metric.Kind.EVAL)
    data = load_history(run, max_points=1000)
    assert not data["downsampled"]
    assert [p["step"] for p in _metric_points(data)] == list(range(1, 301))
    assert [p["val_loss"] is not None for p in data["metrics"] if p["kind"] == "eval"] == [True] * 3
    assert data["last_step"] == 300


def test_a_spike_and_a_dip_survive_downsampling_and_the_size_is_bounded(alice):
    run = make_run(alice)
    add_metrics(run, range(6000), loss=lambda s: 50.0 if s == 4321 else 0.01 if s == 777 else 2.0)
    data = load_history(run, max_points=400)
    points = _metric_points(data)
    assert data["downsampled"]
    assert 100 < len(points) <= 400
    losses = [p["loss"] for p in points]
    assert max(losses) == 50.0
    assert min(losses) == 0.01
    steps = [p["step"] for p in points]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == 5999
    # The spike is placed inside its own bucket, not smeared across the chart.
    spike_steps = [p["step"] for p in points if p["loss"] == 50.0]
    assert len(spike_steps) == 1 and abs(spike_steps[0] - 4321) <= 6000 / 200


def test_a_monotonic_schedule_stays_monotonic_after_downsampling(alice):
    run = make_run(alice)
    add_metrics(run, range(4000))
    points = _metric_points(load_history(run, max_points=200))
    lrs = [p["lr"] for p in points]
    tokens = [p["tokens_seen"] for p in points]
    assert lrs == sorted(lrs, reverse=True)
    assert tokens == sorted(tokens)


def test_after_returns_every_point_after_the_step_without_downsampling(alice):
    run = make_run(alice)
    add_metrics(run, range(1, 5001))
    add_metrics(run, [4500, 5000], kind=Metric.Kind.EVAL)
    data = load_history(run, max_points=100, after=4000)
    steps = [p["step"] for p in data["metrics"] if p["kind"] == "metric"]
    assert steps == list(range(4001, 5001))
    assert [p["step"] for p in data["metrics"] if p["kind"] == "eval"] == [4500, 5000]
    assert not data["downsampled"] and not data["truncated"]
    assert data["last_step"] == 5000


def test_history_endpoint_serves_the_owner_and_validates_parameters(client, alice):
    run = make_run(alice)
    add_metrics(run, range(1, 11))
    client.force_login(alice)
    ok = client.get(f"/api/runs/{run.pk}/metrics?after=5")
    assert ok.status_code == 200
    assert [p["step"] for p in ok.json()["metrics"]] == [6, 7, 8, 9, 10]
    assert ok.json()["run"]["id"] == run.pk
    for query, field in (
        ("after=-1", "after"),
        ("after=x", "after"),
        ("max_points=5", "max_points"),
    ):
        bad = client.get(f"/api/runs/{run.pk}/metrics?{query}")
        assert bad.status_code == 400, query
        assert bad.json()["field"] == field


def test_it_rejects_other_users_run_and_anonymous_requests(client, alice, bob):
    run = make_run(alice)
    assert client.get(f"/api/runs/{run.pk}/metrics").status_code == 401
    client.force_login(bob)
    assert client.get(f"/api/runs/{run.pk}/metrics").status_code == 404
    assert client.get(f"/api/runs/{run.pk}/log").status_code == 404


def test_long_runs_come_from_cached_tiles_that_keep_extremes_and_grow(alice, monkeypatch):
    from webapp.runs import history, history_tiles

    run = make_run(alice)
    add_metrics(run, range(6000), loss=lambda s: 50.0 if s == 4321 else 2.0 - s / 1e5)
    direct = _metric_points(load_history(run, max_points=400))
    monkeypatch.setattr(history, "DIRECT_MAX_RANGE", 1000)
    tiled = _metric_points(load_history(run, max_points=400))
    assert len(tiled) <= 400
    assert max(p["loss"] for p in tiled) == max(p["loss"] for p in direct) == 50.0
    assert min(p["loss"] for p in tiled) == min(p["loss"] for p in direct)
    redis = history_tiles._client()
    cached = redis.strlen(history_tiles._key(run, "metric", 0))
    assert cached == (5999 // history_tiles.TILE_STEPS) * history_tiles.ROW_BYTES
    # A coarser chart reads the next tile level, built from the first one.
    coarse = _metric_points(load_history(run, max_points=50))
    assert len(coarse) <= 50 and max(p["loss"] for p in coarse) == 50.0
    assert redis.strlen(history_tiles._key(run, "metric", 1)) == (
        5999 // history_tiles.tile_width(1) * history_tiles.ROW_BYTES
    )
    # New rows (and a new spike) show up; the complete tiles are reused, not recomputed.
    add_metrics(run, range(6000, 8000), loss=lambda s: 99.0 if s == 7500 else 1.0)
    grown = _metric_points(load_history(run, max_points=400))
    assert max(p["loss"] for p in grown) == 99.0
    assert grown[-1]["step"] == 7999 and len(grown) <= 400
    assert [p["lr"] for p in grown] == sorted((p["lr"] for p in grown), reverse=True)


def test_a_resume_cuts_cached_tiles_back_to_its_checkpoint(alice, monkeypatch):
    from webapp.runs import history

    monkeypatch.setattr(history, "DIRECT_MAX_RANGE", 1000)
    run = make_run(alice, attempt=1)
    add_metrics(run, range(6000), loss=lambda s: 80.0 if s == 4500 else 2.0)
    assert max(p["loss"] for p in _metric_points(load_history(run, max_points=400))) == 80.0
    # What the worker does for a new attempt from step 3000 (worker.runner.abandon_after).
    Run.objects.filter(pk=run.pk).update(
        attempt=2, resume_from="checkpoints/step-003000", state=Run.State.RUNNING
    )
    Metric.objects.filter(run=run, step__gt=3000).delete()
    add_metrics(run, range(3001, 6000), loss=lambda s: 1.5)
    run.refresh_from_db()
    points = _metric_points(load_history(run, max_points=400))
    assert max(p["loss"] for p in points) == 2.0
    assert min(p["loss"] for p in points) == 1.5


def test_history_still_answers_without_redis(alice, monkeypatch, settings):
    from webapp.runs import history

    monkeypatch.setattr(history, "DIRECT_MAX_RANGE", 1000)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    run = make_run(alice)
    add_metrics(run, range(3000), loss=lambda s: 7.0 if s == 2345 else 2.0)
    points = _metric_points(load_history(run, max_points=200))
    assert max(p["loss"] for p in points) == 7.0 and len(points) <= 200


def test_the_workers_warm_up_fills_the_tile_cache_so_page_loads_start_warm(alice, monkeypatch):
    from webapp.runs import history, history_tiles

    run = make_run(alice)
    add_metrics(run, range(6000), loss=lambda s: 7.0 if s == 1234 else 1.0)
    monkeypatch.setattr(history, "DIRECT_MAX_RANGE", 1000)
    redis = history_tiles._client()
    key = history_tiles._key(run, "metric", 0)
    assert redis.strlen(key) == 0
    history.warm_cache(run.pk)
    assert redis.strlen(key) == (5999 // history_tiles.TILE_STEPS) * history_tiles.ROW_BYTES
    # The page load after the warm-up reads the cached tiles and still shows the spike.
    assert max(p["loss"] for p in _metric_points(load_history(run, max_points=400))) == 7.0
    history.warm_cache(10**9)  # a run that is gone is ignored
