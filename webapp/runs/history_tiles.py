"""Pre-aggregated history tiles in Redis, so a million-point run loads in milliseconds.

Aggregating a million rows in SQL takes seconds on a busy machine, every time. A
metric row never changes once written (a resume deletes the rows after its
checkpoint instead), so the MIN/MAX of every column per tile of
:data:`TILE_STEPS` steps is computed once, appended to one Redis string per
(run, kind) as float64 rows, and merged into chart buckets with numpy. Each
request aggregates in SQL only the tiles completed since the last request plus
the still-growing last tile (an index range scan over a few rows).

Tile ``i`` of a level covers steps ``[i * width, (i + 1) * width)``; a level's
cache holds tiles ``0 .. n-1`` with no gaps (an empty tile is all NaN), only tiles
wholly below the newest step (those cannot change any more). Coarser levels
(``FANOUT`` tiles of the level below each) are built from the finer ones, so a
million-step run is read as ~2,000 tiles, not ~30,000.

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
"""Steps per finest cached tile; chart buckets of long runs are whole numbers of tiles."""
FANOUT = 16
LEVELS = 3
"""Tile levels of 32, 512 and 8192 steps; a request reads the coarsest that suffices."""

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


def buckets(run: Run, kind: str, hi: int, n_buckets: int) -> np.ndarray:
    """At most ``n_buckets`` buckets (rows; columns :data:`COLUMNS`, NaN where empty) over
    steps ``0..hi`` of ``run``'s ``kind`` rows, merged from the cached tiles."""
    # The coarsest level that still gives at least half the buckets asked for: reading
    # 2,000 coarse tiles is much cheaper than 30,000 fine ones.
    level = max(
        lvl for lvl in range(LEVELS) if lvl == 0 or hi // tile_width(lvl) + 1 >= n_buckets // 2
    )
    tiles = load_tiles(run, kind, hi, level)
    per_bucket = max(1, math.ceil(len(tiles) / n_buckets))
    return _merge(tiles, per_bucket)[: n_buckets + 1]


def tile_width(level: int) -> int:
    """Steps per tile at ``level`` (level 0: TILE_STEPS; each level FANOUT times wider)."""
    return TILE_STEPS * FANOUT**level


def load_tiles(run: Run, kind: str, hi: int, level: int = 0) -> np.ndarray:
    """Tiles ``0 .. hi // width`` of ``level`` (tiles x COLUMNS); the cache grows as needed."""
    r = _client()
    limit = _cacheable_steps(r, run, kind)
    width = tile_width(level)
    stored = _stored(r, run, kind, level, min(hi, limit) // width)
    # The newest tiles are still growing (or not cacheable yet): always fresh from SQL.
    tail = _tiles_from_sql(run, kind, width, len(stored), hi // width + 1)
    return np.vstack([stored, tail])


def _stored(r: redis.Redis, run: Run, kind: str, level: int, complete: int) -> np.ndarray:
    """The cached tiles of ``level``, first extended to ``complete`` tiles if short."""
    key = _key(run, kind, level)
    have = r.strlen(key) // ROW_BYTES
    if have < complete:
        if level == 0:
            fresh = _tiles_from_sql(run, kind, TILE_STEPS, have, complete)
        else:  # from the level below, itself extended first
            below = _stored(r, run, kind, level - 1, complete * FANOUT)[have * FANOUT :]
            if len(below) < (complete - have) * FANOUT:  # lost a race: do not cache
                complete = have
            fresh = _merge(below[: (complete - have) * FANOUT], FANOUT)
        if len(fresh):
            r.eval(_APPEND_AT, 1, key, have * ROW_BYTES, fresh.tobytes(), KEY_TTL_S)
    data = r.get(key) or b""
    data = data[: min(len(data) // ROW_BYTES, complete) * ROW_BYTES]
    return np.frombuffer(data, dtype="<f8").reshape(-1, len(COLUMNS))


def _merge(tiles: np.ndarray, group: int) -> np.ndarray:
    """Every ``group`` consecutive tiles merged into one (MIN of mins, MAX of maxes)."""
    if not len(tiles):
        return tiles
    starts = np.arange(0, len(tiles), group)
    merged = np.empty((len(starts), len(COLUMNS)))
    merged[:, 0::2] = np.fmin.reduceat(tiles[:, 0::2], starts, axis=0)
    merged[:, 1::2] = np.fmax.reduceat(tiles[:, 1::2], starts, axis=0)
    return merged


def _cacheable_steps(r: redis.Redis, run: Run, kind: str) -> int:
    """Cut the cache back after a resume; returns up to which step tiles may be cached."""
    everything = 2**62
    resume_step = _resume_step(run.resume_from)
    before_training = run.state in BEFORE_TRAINING and resume_step is not None
    keep: int | None = None  # steps whose tiles stay
    attempt_key = _key(run, kind, "attempt")
    seen_attempt = r.get(attempt_key)
    if seen_attempt is not None and int(seen_attempt) != run.attempt:
        keep = 0 if resume_step is None else resume_step + 1
    if before_training:
        keep = resume_step + 1
    if keep is not None:
        for level in range(LEVELS):
            cut = keep // tile_width(level) * ROW_BYTES
            r.eval(_TRUNCATE_TO, 1, _key(run, kind, level), cut, KEY_TTL_S)
    r.set(attempt_key, run.attempt, ex=KEY_TTL_S)
    return resume_step + 1 if before_training else everything


def _tiles_from_sql(run: Run, kind: str, width: int, first: int, end: int) -> np.ndarray:
    """Tiles ``first .. end-1`` of ``width`` steps aggregated in SQL, NaN where empty."""
    out = np.full((max(0, end - first), len(COLUMNS)), np.nan)
    if end <= first:
        return out
    rows = Metric.objects.filter(
        run_id=run.pk, kind=kind, step__gte=first * width, step__lt=end * width
    )
    for b in aggregate_buckets(rows, width, 0):
        out[b["bucket"] - first] = [np.nan if b[c] is None else b[c] for c in COLUMNS]
    return out


def _resume_step(folder: str) -> int | None:
    match = _STEP_DIR.search(folder or "")
    return int(match.group(1)) if match else None


def _key(run: Run, kind: str, level: int | str) -> str:
    # created_at tells apart runs that share an id (a database rebuilt from scratch).
    created = int(run.created_at.timestamp() * 1000) if run.created_at else 0
    return f"runpage:tiles:v2:{run.pk}:{created}:{kind}:{level}"


@functools.cache
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5)


def _client() -> redis.Redis:
    return _client_for(settings.REDIS_URL)
