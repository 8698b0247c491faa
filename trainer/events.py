"""The run's event log: ``<run_dir>/events.jsonl``, schema v1 (docs/CONTRACTS.md).

One JSON object a line, written by rank 0 only and flushed per line, so the
worker tailing the file never sees half an object. Kinds: metric, eval,
checkpoint, status. The file is appended to, so a resumed run continues the
same log.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Literal

__all__ = ["EVENTS_FILE", "SCHEMA_VERSION", "EventWriter", "read_events"]

EVENTS_FILE = "events.jsonl"
SCHEMA_VERSION = 1
Status = Literal["running", "completed", "preempted", "failed"]


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    # JSON has no NaN/Infinity: a diverged loss is sent as null rather than breaking parsers.
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        out[key] = value
    return out


class EventWriter:
    """Appends events to ``run_dir/events.jsonl``; a no-op on ranks other than 0."""

    def __init__(self, run_dir: str | Path, *, enabled: bool = True) -> None:
        self.path = Path(run_dir) / EVENTS_FILE
        self._file = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")

    def write(self, kind: str, data: dict[str, Any], step: int | None = None) -> None:
        """Write one event line and flush it."""
        if self._file is None:
            return
        event: dict[str, Any] = {"v": SCHEMA_VERSION, "t": round(time.time(), 3), "kind": kind}
        if step is not None:
            event["step"] = step
        event["data"] = _clean(data)
        self._file.write(json.dumps(event, separators=(",", ":")) + "\n")
        self._file.flush()

    def metric(self, step: int, data: dict[str, Any]) -> None:
        """Training metrics (loss, lr, grad_norm, tokens_per_s, mfu, mem_gb, tokens_seen, step_time)."""
        self.write("metric", data, step)

    def eval(self, step: int, val_loss: float, val_ppl: float) -> None:
        """A validation result."""
        self.write("eval", {"val_loss": val_loss, "val_ppl": val_ppl}, step)

    def checkpoint(self, step: int, data: dict[str, Any]) -> None:
        """A committed checkpoint (path relative to the run dir, bytes, tokens_seen, loss, val_loss)."""
        self.write("checkpoint", data, step)

    def status(self, state: Status, message: str = "", step: int | None = None) -> None:
        """The run's state: running, completed, preempted or failed."""
        self.write("status", {"state": state, "message": message}, step)

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def read_events(run_dir: str | Path) -> list[dict[str, Any]]:
    """All complete events of a run, in order (a partial last line is skipped)."""
    path = Path(run_dir) / EVENTS_FILE
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events
