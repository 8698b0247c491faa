"""Pre-aggregated history tiles in Redis, so a million-point run loads in milliseconds.

Aggregating a million rows in SQL takes seconds on a busy machine, every time. A
metric row never changes once written (a resume deletes the rows after its
checkpoint instead), so the MIN/MAX of every column per tile of
:data:`TILE_STEPS` steps is computed once, appended to one Redis string per
(run, kind) as float64 rows, and merged into chart buckets with numpy. Each
request aggregates in SQL only the tiles completed since the last request plus
the still-growing last tile (an index range scan over a few rows).

Tile ``i`` covers steps ``[i * TILE_STEPS, (i + 1) * TILE_STEPS)``; the cache
holds tiles ``0 .. n-1`` with no gaps (an empty tile is all NaN), only tiles
wholly below the newest step (those cannot change any more).

A resume rewinds the timeline: while a run with ``resume_from`` has not started
training again (queued/starting/preparing, when the rows after the checkpoint
may still be there) and whenever the attempt changes, the cache is cut back to
the checkpoint's step.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

import numpy as np
import redis
from django.conf import settings
from django.db.models import F, IntegerField, Max, Min, QuerySet
from django.db.models.expressions import ExpressionWrapper

from webapp.runs.models import Metric, Run
from webapp.runs.serializers import METRIC_FIELDS

TILE_STEPS = 32
"""Steps per cached tile; chart buckets of long runs are whole numbers of tiles."""

KEY_TTL_S = 14 * 24 * 3600
AGGREGATED = ("step", "t", "tokens_seen") + tuple(
    f for f in METRIC_FIELDS if f not in ("kind", "step", "t", "tokens_seen")
)
"""Columns whose MIN and MAX a bucket (or a tile) holds."""

COLUMNS = tuple(f"{col}_{agg}" for col in AGGREGATED for agg in ("min", "max"))
ROW_BYTES = 8 * len(COLUMNS)
# States in which a resumed run may still hold the rows its new attempt will delete.
BEFORE_TRAINING = (Run.State.QUEUED, Run.State.STARTING, Run.State.PREPARING)
_STEP_DIR = re.compile(r"step-(\d+)$")

# Append only if nobody appended since we read the length: concurrent requests never
# duplicate or misalign tiles.
_APPEND_AT = """
if redis.call('STRLEN', KEYS[1]) == tonumber(ARGV[1]) then
  redis.call('APPEND', KEYS[1], ARGV[2])
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return redis.call('STRLEN', KEYS[1])
"""
_TRUNCATE_TO = """
if redis.call('STRLEN', KEYS[1]) > tonumber(ARGV[1]) then
  local kept = redis.call('GETRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
  if tonumber(ARGV[1]) == 0 then kept = '' end
  redis.call('SET', KEYS[1], kept, 'EX', ARGV[2])
end
return redis.call('STRLEN', KEYS[1])
"""


def aggregate_buckets(rows: QuerySet[Metric], width: int, origin: int) -> list[dict[str, Any]]:
    """One row per ``width``-step bucket from ``origin``: MIN/MAX of every column, in SQL.

    Each row has ``bucket`` (its index) and ``<col>_min`` / ``<col>_max``.
    """
    bucket = ExpressionWrapper((F("step") - origin) / width, output_field=IntegerField())
    aggregates: dict[str, Any] = {}
    for col in AGGREGATED:
        aggregates[f"{col}_min"] = Min(col)
        aggregates[f"{col}_max"] = Max(col)
    return list(
        rows.annotate(bucket=bucket)
        .values("bucket")
        .annotate(**aggregates)
        .order_by("bucket")
        .values("bucket", *aggregates)
    )


def buckets(run: Run, kind: str, hi: int, n_buckets: int) -> list[dict[str, Any]]:
    """At most ``n_buckets`` bucket rows (``aggregate_buckets`` shape, without ``bucket``)
    covering steps ``0..hi`` of ``run``'s ``kind`` rows, merged from cached tiles."""
    tiles = load_tiles(run, kind, hi)
    per_bucket = max(1, math.ceil(len(tiles) / n_buckets))
    starts = np.arange(0, len(tiles), per_bucket)
    with np.errstate(invalid="ignore"):
        mins = np.fmin.reduceat(tiles[:, 0::2], starts, axis=0)
        maxs = np.fmax.reduceat(tiles[:, 1::2], starts, axis=0)
    merged = np.empty((len(starts), len(COLUMNS)))
    merged[:, 0::2], merged[:, 1::2] = mins, maxs
    merged = merged[~np.isnan(merged[:, 0])]  # buckets without a single row
    out = []
    for row in merged.tolist():
        b = {c: (None if math.isnan(v) else v) for c, v in zip(COLUMNS, row, strict=True)}
        for c in ("step_min", "step_max", "tokens_seen_min", "tokens_seen_max"):
            if b[c] is not None:
                b[c] = int(b[c])
        out.append(b)
    return out


def load_tiles(run: Run, kind: str, hi: int) -> np.ndarray:
    """Tiles ``0 .. hi // TILE_STEPS`` as an array (tiles x COLUMNS); the cache grows as needed."""
    r = _client()
    key = _key(run, kind)
    limit = _valid_tiles(r, key, run)  # tiles that may be cached at all
    have = r.strlen(key) // ROW_BYTES
    complete = min(hi // TILE_STEPS, limit)
    if have < complete:
        fresh = _tiles_from_sql(run, kind, have, complete)
        r.eval(_APPEND_AT, 1, key, have * ROW_BYTES, fresh.tobytes(), KEY_TTL_S)
    data = r.get(key) or b""
    data = data[: len(data) // ROW_BYTES * ROW_BYTES]
    stored = np.frombuffer(data, dtype="<f8").reshape(-1, len(COLUMNS))
    stored = stored[: min(len(stored), limit)]
    # The newest tiles are still growing (or not cacheable yet): always fresh from SQL.
    tail = _tiles_from_sql(run, kind, len(stored), hi // TILE_STEPS + 1)
    return np.vstack([stored, tail])


def _valid_tiles(r: redis.Redis, key: str, run: Run) -> int:
    """Cut the cache back after a resume; returns how many tiles may be cached now."""
    everything = 2**62
    resume_step = _resume_step(run.resume_from)
    cut: int | None = None
    seen_attempt = r.get(key + ":attempt")
    if seen_attempt is not None and int(seen_attempt) != run.attempt:
        cut = 0 if resume_step is None else (resume_step + 1) // TILE_STEPS
    if run.state in BEFORE_TRAINING and resume_step is not None:
        cut = (resume_step + 1) // TILE_STEPS
    if cut is not None:
        r.eval(_TRUNCATE_TO, 1, key, cut * ROW_BYTES, KEY_TTL_S)
    r.set(key + ":attempt", run.attempt, ex=KEY_TTL_S)
    if run.state in BEFORE_TRAINING and resume_step is not None:
        return (resume_step + 1) // TILE_STEPS
    return everything


def _tiles_from_sql(run: Run, kind: str, first: int, end: int) -> np.ndarray:
    """Tiles ``first .. end-1`` aggregated in SQL (an index range scan), NaN where empty."""
    out = np.full((max(0, end - first), len(COLUMNS)), np.nan)
    if end <= first:
        return out
    rows = Metric.objects.filter(
        run_id=run.pk,
        kind=kind,
        step__gte=first * TILE_STEPS,
        step__lt=end * TILE_STEPS,
    )
    for b in aggregate_buckets(rows, TILE_STEPS, 0):
        out[b["bucket"] - first] = [np.nan if b[c] is None else b[c] for c in COLUMNS]
    return out


def _resume_step(folder: str) -> int | None:
    match = _STEP_DIR.search(folder or "")
    return int(match.group(1)) if match else None


def _key(run: Run, kind: str) -> str:
    # created_at tells apart runs that share an id (a database rebuilt from scratch).
    created = int(run.created_at.timestamp() * 1000) if run.created_at else 0
    return f"runpage:tiles:v1:{run.pk}:{created}:{kind}"


@functools.cache
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5)


def _client() -> redis.Redis:
    return _client_for(settings.REDIS_URL)
