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

import numpy as np
from django.db.models import Max, Min
from redis.exceptions import RedisError

from webapp.runs import history_tiles
from webapp.runs.history_tiles import AGGREGATED, COLUMNS, aggregate_buckets
from webapp.runs.models import Metric, Run
from webapp.runs.serializers import METRIC_FIELDS

log = logging.getLogger(__name__)

DEFAULT_MAX_POINTS = 4000
"""Points per kind (metric, eval) a history response carries at most."""

MIN_MAX_POINTS = 50
MAX_MAX_POINTS = 20000
AFTER_LIMIT = 20000
"""Rows an ``after=`` request returns at most; more means the client fell far behind."""

# Columns that only grow with the step: the first point of a bucket takes the minimum.
MONOTONIC = ("t", "tokens_seen")
INTEGER_FIELDS = ("step", "tokens_seen")
DIRECT_MAX_RANGE = 50_000
"""Step ranges up to this are aggregated in SQL per request (at most this many rows);
longer runs are served from the tile cache in :mod:`webapp.runs.history_tiles`."""


def load_history(
    run: Run, *, max_points: int = DEFAULT_MAX_POINTS, after: int | None = None
) -> dict[str, Any]:
    """The points of ``run`` as metric dicts (``serializers.metric_dict`` shape).

    Returns ``{"metrics": [...], "downsampled": bool, "truncated": bool,
    "last_step": int | None}``: the metric points, then the eval points, each by step
    (``after=`` answers: both kinds together, by step).
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
    return {
        "metrics": points,
        "downsampled": downsampled,
        "truncated": False,
        "last_step": max((p["step"] for p in points), default=None),
    }


def warm_cache(run_id: int) -> None:
    """Bring a long run's tile cache up to date, so no page load pays for a cold one.

    The worker calls this every ``HISTORY_WARM_SECONDS`` while it follows a run: each
    call aggregates only the tiles completed since the last one (milliseconds), whereas
    the first load of a cold million-point run aggregates them all (seconds). Short
    runs are aggregated directly on each load and need no warming.
    """
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return
    for kind in (Metric.Kind.METRIC, Metric.Kind.EVAL):
        downsample(run, kind, DEFAULT_MAX_POINTS)


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
    return _bucket_points(_as_array(aggregate_buckets(rows, width, bounds["lo"])), kind), True


def _bucket_points(buckets: np.ndarray, kind: str) -> list[dict[str, Any]]:
    """Two points per bucket (first and last step) carrying the bucket's min and max.

    ``buckets`` has one row per bucket and the columns ``history_tiles.COLUMNS``
    (NaN for a column without values); numpy keeps this fast for thousands of buckets.
    """
    if not len(buckets):
        return []
    index = {c: i for i, c in enumerate(COLUMNS)}
    first: dict[str, np.ndarray] = {}
    last: dict[str, np.ndarray] = {}
    for col in AGGREGATED:
        lo, hi = buckets[:, index[f"{col}_min"]], buckets[:, index[f"{col}_max"]]
        if col in ("step", *MONOTONIC):
            first[col], last[col] = lo, hi
            continue
        rising = _rising(lo, hi)
        first[col], last[col] = np.where(rising, lo, hi), np.where(rising, hi, lo)
    # Interleave first/last per bucket; a one-step bucket gives a single point.
    keep_last = last["step"] != first["step"]
    order = np.argsort(np.concatenate([first["step"], last["step"][keep_last]]), kind="stable")
    columns = {col: np.concatenate([first[col], last[col][keep_last]])[order] for col in AGGREGATED}
    out_cols = []
    for field in METRIC_FIELDS:
        if field == "kind":
            out_cols.append([kind] * len(order))
            continue
        values = columns[field].tolist()
        if field in INTEGER_FIELDS:
            out_cols.append([None if v != v else int(v) for v in values])  # v != v: NaN
        else:
            out_cols.append([None if v != v else v for v in values])
    return [dict(zip(METRIC_FIELDS, row, strict=True)) for row in zip(*out_cols, strict=True)]


def _rising(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per bucket, whether the series rises there (judged by the neighbours' midpoints);
    unknown (no values around) counts as rising."""
    mid = (lo + hi) / 2
    before = np.concatenate([mid[:1], mid[:-1]])
    after = np.concatenate([mid[1:], mid[-1:]])
    return ~(after < before)  # NaN compares False: rising


def _as_array(rows: list[dict[str, Any]]) -> np.ndarray:
    """SQL bucket rows (dicts) as the float array ``_bucket_points`` reads."""
    return np.array(
        [[np.nan if b[c] is None else b[c] for c in COLUMNS] for b in rows], dtype=float
    ).reshape(-1, len(COLUMNS))
