"""The attempt fence: ``<run_dir>/attempt.json`` names the attempt allowed to write the run.

A run is one folder on shared storage; each launch of it is an attempt. A host cut off
from the database and Redis keeps its torchrun (and the shared storage) while the lost-run
sweep starts attempt N+1 elsewhere: two trainers would append to the same events.jsonl
and save into the same checkpoints folder. The worker writes this file (atomically:
tmp + rename, so a reader sees the old or the new content, never half) before it spawns
torchrun with ``--attempt N``; the trainer of attempt N stops, without writing anything
more, once the file names a newer attempt (:data:`EXIT_SUPERSEDED`).

No Django and no torch here: the worker and the trainer both use it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["ATTEMPT_FILE", "EXIT_SUPERSEDED", "read_attempt", "superseded", "write_attempt"]

ATTEMPT_FILE = "attempt.json"
EXIT_SUPERSEDED = 76  # rank exit code: a newer attempt owns the run directory; nothing saved.


def write_attempt(run_dir: str | Path, attempt: int, **info: Any) -> Path:
    """Write ``{"attempt": attempt, **info}`` (host, worker...) atomically; returns the path."""
    path = Path(run_dir) / ATTEMPT_FILE
    tmp = path.with_name(f".{ATTEMPT_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"attempt": int(attempt), **info}), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_attempt(run_dir: str | Path) -> int | None:
    """The attempt the file names, or None when there is no (valid) file."""
    try:
        attempt = json.loads((Path(run_dir) / ATTEMPT_FILE).read_text(encoding="utf-8"))["attempt"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else None


def superseded(run_dir: str | Path, attempt: int | None) -> int | None:
    """The newer attempt the file names if it is newer than ``attempt``, else None.

    ``attempt`` None (no fencing asked for) is never superseded. One small read. On a
    local disk a change is seen at the next read; on a shared filesystem only once this
    host's client cache revalidates the name (NFS: up to its attribute cache timeout).
    """
    if attempt is None:
        return None
    current = read_attempt(run_dir)
    return current if current is not None and current > attempt else None
