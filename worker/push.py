"""Throttled pushes of a run's new rows and log lines to the browsers watching it.

A fast run writes many events a second; browsers get at most one message every
``interval`` seconds per run, carrying everything new since the previous one. The
websocket is only a notification channel (channels_redis drops messages to full
channels), so a failed push is logged and forgotten: the HTTP history is the truth.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from webapp.runs.models import Checkpoint, Metric, Run
from webapp.runs.serializers import broadcast, checkpoint_dict, metric_dict, run_summary
from worker import launcher
from worker.events import Batch

log = logging.getLogger(__name__)

MAX_LOG_LINES = 200  # per push: a log storm must not make one giant message
LOG_START_BYTES = 16 * 1024  # a re-attached follower starts with the recent end of the log


class Pusher:
    """Collects what changed for one run and broadcasts it at a bounded rate."""

    def __init__(self, run_id: int, run_dir: Path, interval: float = 0.5) -> None:
        self.run_id = run_id
        self.interval = interval
        self.log_path = run_dir / launcher.LOG_FILE
        self.metrics: dict[tuple[str, int], Metric] = {}
        self.checkpoints: dict[int, Checkpoint] = {}
        self.last_push = 0.0
        self.log_offset = max(0, _size(self.log_path) - LOG_START_BYTES)
        self._partial = b""
        self.dirty = True  # the first push announces the follower (state, heartbeat)

    def add(self, batch: Batch) -> None:
        """Remember the rows of an ingested batch until the next push."""
        for m in batch.metrics:
            self.metrics[(m.kind, m.step)] = m
        for c in batch.checkpoints:
            self.checkpoints[c.step] = c
        if batch.metrics or batch.checkpoints or batch.status:
            self.dirty = True

    def _new_log_lines(self) -> list[str]:
        size = _size(self.log_path)
        if size < self.log_offset:  # truncated or replaced: start over
            self.log_offset, self._partial = 0, b""
        if size == self.log_offset:
            return []
        with self.log_path.open("rb") as f:
            f.seek(self.log_offset)
            data = self._partial + f.read(size - self.log_offset)
        self.log_offset = size
        *lines, self._partial = data.split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in lines][-MAX_LOG_LINES:]

    def maybe_push(self) -> bool:
        """Push if something is new and the interval has passed since the last push."""
        if time.monotonic() - self.last_push < self.interval:
            return False
        return self.push()

    def push(self, force: bool = False) -> bool:
        """Broadcast everything collected (and new log lines) now; True if sent."""
        lines = self._new_log_lines()
        if not (force or self.dirty or lines):
            return False
        run = Run.objects.select_related("owner").get(pk=self.run_id)
        payload = {
            "run": run_summary(run),
            "metrics": [metric_dict(m) for _, m in sorted(self.metrics.items(), key=_by_step)],
            "checkpoints": [checkpoint_dict(c) for _, c in sorted(self.checkpoints.items())],
            "log": lines,
        }
        self.metrics, self.checkpoints, self.dirty = {}, {}, False
        self.last_push = time.monotonic()
        try:
            broadcast(self.run_id, payload)
        except Exception:  # best effort: never let the channel layer stop a run
            log.exception("run %s: broadcast failed", self.run_id)
            return False
        return True


def _by_step(item: tuple[tuple[str, int], Metric]) -> tuple[int, str]:
    return item[0][1], item[0][0]


def _size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def push_progress(run_id: int) -> None:
    """Broadcast only the run summary (preparation progress, state changes)."""
    try:
        run = Run.objects.select_related("owner").get(pk=run_id)
        broadcast(run_id, {"run": run_summary(run)})
    except Exception:
        log.exception("run %s: broadcast failed", run_id)
