"""The run list's derived columns (ETA, duration) and its filter, as plain functions."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from trainer.config import ConfigError, parse_config
from webapp.runs.models import Run
from webapp.runs.serializers import run_summary

PAGE_SIZE = 25


def tokens_per_step(run: Run) -> int | None:
    """Tokens in one optimizer step of ``run``, from its stored config (None if it no longer
    validates, e.g. saved under an older schema)."""
    try:
        return parse_config(run.config).tokens_per_step()
    except ConfigError:
        return None


def eta_seconds(run: Run, now: datetime | None = None) -> float | None:
    """Seconds left for an active run: from tokens/s when known, else from the step rate."""
    if run.state != Run.State.RUNNING or not run.total_steps or run.step <= 0:
        return None
    left = max(0, run.total_steps - run.step)
    per_step = tokens_per_step(run)
    if run.tokens_per_s and per_step:
        return left * per_step / run.tokens_per_s
    if run.started_at:
        elapsed = ((now or timezone.now()) - run.started_at).total_seconds()
        return left * elapsed / run.step if elapsed > 0 else None
    return None


def duration_seconds(run: Run, now: datetime | None = None) -> float | None:
    """Wall time from start to finish (or to now while active)."""
    if not run.started_at:
        return None
    end = run.finished_at or (now or timezone.now())
    return max(0.0, (end - run.started_at).total_seconds())


def human_seconds(seconds: float | None) -> str:
    """``3725`` -> ``1h 02m``; empty for None."""
    if seconds is None:
        return ""
    td = timedelta(seconds=int(seconds))
    hours, rest = divmod(td.seconds, 3600)
    hours += td.days * 24
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def filter_runs(runs: QuerySet[Run], state: str | None) -> QuerySet[Run]:
    """Runs in ``state`` ("active" for every active state); unknown states filter nothing out."""
    if state == "active":
        return runs.filter(state__in=Run.ACTIVE_STATES)
    if state in Run.State.values:
        return runs.filter(state=state)
    return runs


def list_row(run: Run, now: datetime | None = None) -> dict[str, Any]:
    """One row of the run list / API list: the shared summary plus ETA and duration."""
    eta = eta_seconds(run, now)
    duration = duration_seconds(run, now)
    return {
        **run_summary(run),
        "eta_seconds": eta,
        "duration_seconds": duration,
        "eta": human_seconds(eta),
        "duration": human_seconds(duration),
        "url": f"/runs/{run.pk}/",
    }
