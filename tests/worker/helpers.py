"""Helpers for the worker tests: runs, datasets and event files written by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from webapp.runs.models import Run


def make_run(owner, config: dict[str, Any] | None = None, **fields: Any) -> Run:
    """A Run row with a minimal valid config (corpora may be placeholders)."""
    config = config or {
        "model": {"path": "/nonexistent/model"},
        "data": {"corpora": [{"path": "dataset://1"}], "seq_len": 32},
    }
    return Run.objects.create(owner=owner, name=fields.pop("name", "r"), config=config, **fields)


def metric_line(step: int, loss: float = 2.0, t: float = 1.0) -> str:
    data = {
        "loss": loss,
        "lr": 1e-4,
        "grad_norm": 0.5,
        "tokens_per_s": 100.0,
        "tokens_seen": step * 64,
    }
    return json.dumps({"v": 1, "t": t, "kind": "metric", "step": step, "data": data}) + "\n"


def event_line(kind: str, data: dict[str, Any], step: int | None = None) -> str:
    event: dict[str, Any] = {"v": 1, "t": 1.0, "kind": kind, "data": data}
    if step is not None:
        event["step"] = step
    return json.dumps(event) + "\n"


def append(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as f:
        f.write(text.encode() if isinstance(text, str) else text)


def commit_checkpoint(run_dir: Path, step: int) -> str:
    """A checkpoint folder with its .metadata commit marker (as the trainer leaves it)."""
    rel = f"checkpoints/step-{step:06d}"
    (run_dir / rel).mkdir(parents=True, exist_ok=True)
    (run_dir / rel / ".metadata").write_bytes(b"x")
    return rel
