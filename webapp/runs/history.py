"""A run's metric history for the charts, downsampled in SQL so long runs stay fast.

A run of a million steps has a million ``Metric`` rows; the browser needs a few
thousand points per series. The database groups rows into equal step buckets and
returns ``MIN``/``MAX`` of every series per bucket (one ``GROUP BY``), so Python
only ever sees ``max_points`` rows. Long runs (more than ``DIRECT_MAX_RANGE``
steps) use the same aggregation per small tile, cached in Redis and merged with
numpy (:mod:`webapp.runs.history_tiles`), so only new tiles hit the database.
Each bucket becomes two points (its first and last step) carrying the bucket's
extremes, so a loss spike or a dip survives downsampling. Which extreme goes
first follows the series' local trend (from the neighbouring buckets), so a
monotonic curve such as the learning-rate schedule stays monotonic.

``after=<step>`` is the reconnect path: every point after that step, not
downsampled, up to :data:`AFTER_LIMIT` rows (beyond that the client reloads the
downsampled history instead).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.db.models import Max, Min
from redis.exceptions import RedisError

from webapp.runs import history_tiles
from webapp.runs.history_tiles import aggregate_buckets
from webapp.runs.models import Metric, Run
from webapp.runs.serializers import METRIC_FIELDS

log = logging.getLogger(__name__)

DEFAULT_MAX_POINTS = 4000
"""Points per kind (metric, eval) a history response carries at most."""

MIN_MAX_POINTS = 50
MAX_MAX_POINTS = 20000
AFTER_LIMIT = 20000
"""Rows an ``after=`` request returns at most; more means the client fell far behind."""

# Value columns that are charted; tokens_seen and t are the x axes / clock.
SERIES = tuple(f for f in METRIC_FIELDS if f not in ("kind", "step", "t", "tokens_seen"))
# Columns that only grow with the step: the first point of a bucket takes the minimum.
MONOTONIC = ("t", "tokens_seen")
DIRECT_MAX_RANGE = 50_000
"""Step ranges up to this are aggregated in SQL per request (at most this many rows);
longer runs are served from the tile cache in :mod:`webapp.runs.history_tiles`."""


def load_history(
    run: Run, *, max_points: int = DEFAULT_MAX_POINTS, after: int | None = None
) -> dict[str, Any]:
    """The points of ``run`` as metric dicts (``serializers.metric_dict`` shape).

    Returns ``{"metrics": [...], "downsampled": bool, "truncated": bool,
    "last_step": int | None}``, points ordered by step, metric and eval kinds mixed.
    """
    if after is not None:
        rows = list(
            Metric.objects.filter(run_id=run.pk, step__gt=after)
            .order_by("step", "kind")
            .values(*METRIC_FIELDS)[: AFTER_LIMIT + 1]
        )
        truncated = len(rows) > AFTER_LIMIT
        rows = rows[:AFTER_LIMIT]
        return {
            "metrics": rows,
            "downsampled": False,
            "truncated": truncated,
            "last_step": rows[-1]["step"] if rows else after,
        }
    points: list[dict[str, Any]] = []
    downsampled = False
    for kind in (Metric.Kind.METRIC, Metric.Kind.EVAL):
        kind_points, was_downsampled = downsample(run, kind, max_points)
        points.extend(kind_points)
        downsampled = downsampled or was_downsampled
    points.sort(key=lambda p: (p["step"], p["kind"]))
    return {
        "metrics": points,
        "downsampled": downsampled,
        "truncated": False,
        "last_step": points[-1]["step"] if points else None,
    }


def downsample(run: Run, kind: str, max_points: int) -> tuple[list[dict[str, Any]], bool]:
    """At most ``max_points`` points of one kind, keeping each bucket's extremes.

    Returns the points and whether they were downsampled (False: every stored row).
    """
    rows = Metric.objects.filter(run_id=run.pk, kind=kind)
    # "More than max_points rows?" read from the (run, kind, step) index, never a COUNT(*).
    if not rows.order_by("step").values_list("step", flat=True)[max_points : max_points + 1]:
        return list(rows.order_by("step").values(*METRIC_FIELDS)), False
    bounds = rows.aggregate(lo=Min("step"), hi=Max("step"))
    n_buckets = max(1, max_points // 2)  # two points per bucket
    if bounds["hi"] - bounds["lo"] + 1 > DIRECT_MAX_RANGE:
        try:
            buckets = history_tiles.buckets(run, kind, bounds["hi"], n_buckets)
        except RedisError:  # the cache is an optimisation: answer slowly, but answer
            log.warning("run %s: tile cache unavailable, aggregating in SQL", run.pk)
        else:
            return _bucket_points(buckets, kind), True
    width = math.ceil((bounds["hi"] - bounds["lo"] + 1) / n_buckets)
    return _bucket_points(aggregate_buckets(rows, width, bounds["lo"]), kind), True


def _bucket_points(buckets: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Two points per bucket (first and last step) carrying the bucket's min and max."""
    rising = {col: _trend(buckets, col) for col in SERIES}
    points: list[dict[str, Any]] = []
    for i, b in enumerate(buckets):
        first: dict[str, Any] = {"kind": kind, "step": b["step_min"]}
        last: dict[str, Any] = {"kind": kind, "step": b["step_max"]}
        for col in MONOTONIC:
            first[col], last[col] = b[f"{col}_min"], b[f"{col}_max"]
        for col in SERIES:
            lo, hi = b[f"{col}_min"], b[f"{col}_max"]
            first[col], last[col] = (lo, hi) if rising[col][i] else (hi, lo)
        points.append(first)
        if b["step_max"] != b["step_min"]:
            points.append(last)
    return points


def _trend(buckets: list[dict[str, Any]], col: str) -> list[bool]:
    """Per bucket, whether ``col`` rises there (judged by the neighbours' midpoints)."""
    mids = [
        None if b[f"{col}_min"] is None else (b[f"{col}_min"] + b[f"{col}_max"]) / 2
        for b in buckets
    ]
    rising = []
    for i in range(len(mids)):
        before = mids[i - 1] if i > 0 else mids[i]
        after = mids[i + 1] if i + 1 < len(mids) else mids[i]
        rising.append(before is None or after is None or after >= before)
    return rising
