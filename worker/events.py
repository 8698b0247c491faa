"""Follow a run's ``events.jsonl`` into Metric/Checkpoint rows and the Run's state.

Exactly once: each batch is ingested in one transaction that also moves
``Run.events_offset`` forward with a conditional update (``WHERE events_offset =
<where this batch began>``). A batch is therefore either stored whole together with its
new offset or not at all, and a second follower that read the same bytes finds the
offset moved and stores nothing. A worker that restarts reads again from the stored
offset. The (run, kind, step) and (run, step) upserts are a second line of defence.

Only complete lines count: the trainer may be halfway through writing the last one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from webapp.runs.models import Checkpoint, Metric, Run

log = logging.getLogger(__name__)

METRIC_KEYS = ("loss", "lr", "grad_norm", "tokens_per_s", "mfu", "mem_gb", "step_time")
EVAL_KEYS = ("val_loss", "val_ppl")
TRAINER_STATES = ("running", "completed", "preempted", "failed")
# A batch is bounded so a days-long backlog (worker down for a while) is ingested in pieces.
MAX_BATCH_BYTES = 4 * 1024 * 1024


@dataclass
class ReadResult:
    """Events parsed from complete lines, and the offset just after the last one."""

    events: list[dict[str, Any]]
    start: int
    end: int
    bad_lines: list[str] = field(default_factory=list)


@dataclass
class Batch:
    """What one ingestion stored (for the broadcast)."""

    metrics: list[Metric] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    status: dict[str, Any] | None = None


def read_events(path: Path, offset: int, max_bytes: int = MAX_BATCH_BYTES) -> ReadResult:
    """Parse the complete lines of ``path`` from byte ``offset`` (at most ``max_bytes``).

    A line that is not a JSON object of schema v1 is skipped and reported in
    ``bad_lines`` (with its byte offset) rather than blocking the run forever.
    """
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read(max_bytes)
    except FileNotFoundError:
        return ReadResult([], offset, offset)
    cut = data.rfind(b"\n")
    if cut < 0:
        if len(data) >= max_bytes:  # one absurdly long line: skip it rather than stall
            return ReadResult([], offset, offset + len(data), [f"byte {offset}: line too long"])
        return ReadResult([], offset, offset)
    events: list[dict[str, Any]] = []
    bad: list[str] = []
    pos = offset
    for raw in data[: cut + 1].split(b"\n")[:-1]:
        line_at = pos
        pos += len(raw) + 1
        if not raw.strip():
            continue
        try:
            event = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            bad.append(f"byte {line_at}: not JSON ({exc})")
            continue
        if not isinstance(event, dict) or event.get("v") != 1 or "kind" not in event:
            bad.append(f"byte {line_at}: not a v1 event object")
            continue
        events.append(event)
    return ReadResult(events, offset, offset + cut + 1, bad)


def _num(value: Any) -> float | None:
    """A finite float, or None (NaN/inf losses are stored as missing, not as errors)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _metric(run: Run, event: dict[str, Any]) -> Metric | None:
    step = _int(event.get("step"))
    data = event.get("data") or {}
    if step is None or step < 0 or not isinstance(data, dict):
        return None
    kind = Metric.Kind.EVAL if event["kind"] == "eval" else Metric.Kind.METRIC
    keys = EVAL_KEYS if kind == Metric.Kind.EVAL else METRIC_KEYS
    return Metric(
        run=run,
        kind=kind,
        attempt=max(run.attempt, 1),
        step=step,
        t=_num(event.get("t")) or timezone.now().timestamp(),
        tokens_seen=_int(data.get("tokens_seen")),
        **{k: _num(data.get(k)) for k in keys},
    )


def _checkpoint(run: Run, event: dict[str, Any]) -> Checkpoint | None:
    step = _int(event.get("step"))
    data = event.get("data") or {}
    path = data.get("path") if isinstance(data, dict) else None
    # The path is relative to the run directory; refuse anything that could leave it.
    if step is None or not isinstance(path, str) or path.startswith("/") or ".." in path:
        return None
    return Checkpoint(
        run=run,
        step=step,
        path=path,
        tokens_seen=_int(data.get("tokens_seen")),
        loss=_num(data.get("loss")),
        val_loss=_num(data.get("val_loss")),
        bytes=_int(data.get("bytes")),
        deleted=False,
    )


def _dedupe(rows: list, key) -> list:
    """Last row wins per key (bulk upserts refuse two rows for one key in one statement)."""
    return list({key(r): r for r in rows}.values())


def ingest(run_id: int, read: ReadResult) -> Batch | None:
    """Store one read batch and move the run's offset, or nothing if another follower did.

    Returns the stored rows and the last status event, or None when the offset had
    already moved (the batch was ingested elsewhere).
    """
    batch = Batch()
    with transaction.atomic():
        moved = Run.objects.filter(pk=run_id, events_offset=read.start).update(
            events_offset=read.end
        )
        if not moved:
            return None
        run = Run.objects.select_for_update().get(pk=run_id)
        summary: dict[str, Any] = {}
        for event in read.events:
            kind = event.get("kind")
            if kind in ("metric", "eval"):
                row = _metric(run, event)
                if row is not None:
                    batch.metrics.append(row)
            elif kind == "checkpoint":
                row = _checkpoint(run, event)
                if row is not None:
                    batch.checkpoints.append(row)
            elif kind == "status":
                data = event.get("data") or {}
                if isinstance(data, dict) and data.get("state") in TRAINER_STATES:
                    batch.status = data
            else:
                log.warning("run %s: unknown event kind %r", run_id, kind)
        batch.metrics = _dedupe(batch.metrics, lambda m: (m.kind, m.step))
        batch.checkpoints = _dedupe(batch.checkpoints, lambda c: c.step)
        if batch.metrics:
            Metric.objects.bulk_create(
                batch.metrics,
                update_conflicts=True,
                unique_fields=["run", "kind", "step"],
                update_fields=["attempt", "t", "tokens_seen", *METRIC_KEYS, *EVAL_KEYS],
            )
            summary.update(_summary_from_metrics(batch.metrics))
        if batch.checkpoints:
            Checkpoint.objects.bulk_create(
                batch.checkpoints,
                update_conflicts=True,
                unique_fields=["run", "step"],
                update_fields=["path", "tokens_seen", "loss", "val_loss", "bytes", "deleted"],
            )
            # Rows come back without pks from an upsert on some databases: re-read them.
            steps = [c.step for c in batch.checkpoints]
            batch.checkpoints = list(Checkpoint.objects.filter(run_id=run_id, step__in=steps))
            _mark_removed_checkpoints(run)
        if batch.status is not None:
            summary["trainer_status"] = batch.status["state"]
            if batch.status.get("message"):
                summary["message"] = str(batch.status["message"])[:10_000]
            if batch.status["state"] == "running" and run.state == Run.State.STARTING:
                summary["state"] = Run.State.RUNNING
        if batch.metrics and run.state == Run.State.STARTING:
            summary["state"] = Run.State.RUNNING
        if read.bad_lines:
            log.warning("run %s: skipped bad event lines: %s", run_id, read.bad_lines[:5])
        if summary:
            Run.objects.filter(pk=run_id).update(**summary)
    return batch


def _summary_from_metrics(metrics: list[Metric]) -> dict[str, Any]:
    """Run summary columns from the newest train and eval points of a batch."""
    out: dict[str, Any] = {}
    train = [m for m in metrics if m.kind == Metric.Kind.METRIC]
    evals = [m for m in metrics if m.kind == Metric.Kind.EVAL]
    if train:
        last = max(train, key=lambda m: m.step)
        out.update(step=last.step, last_loss=last.loss, tokens_per_s=last.tokens_per_s)
        out["mfu"] = last.mfu
        if last.tokens_seen is not None:
            out["tokens_seen"] = last.tokens_seen
    if evals:
        out["last_val_loss"] = max(evals, key=lambda m: m.step).val_loss
    return out


def _mark_removed_checkpoints(run: Run) -> None:
    """Flag rows whose folder the trainer's retention removed (no .metadata any more)."""
    for ckpt in Checkpoint.objects.filter(run=run, deleted=False):
        if not (run.run_dir / ckpt.path / ".metadata").exists():
            Checkpoint.objects.filter(pk=ckpt.pk).update(deleted=True)


def drain(run_id: int, events_path: Path, max_bytes: int = MAX_BATCH_BYTES) -> Batch:
    """Ingest every complete event after the stored offset; the rows of all batches merged."""
    total = Batch()
    while True:
        offset = Run.objects.values_list("events_offset", flat=True).get(pk=run_id)
        read = read_events(events_path, offset, max_bytes)
        if read.end == read.start:
            return total
        batch = ingest(run_id, read)
        if batch is None:
            continue  # another follower moved the offset: read again from the new one
        total.metrics += batch.metrics
        total.checkpoints += batch.checkpoints
        total.status = batch.status or total.status
