"""Rows for the run page tests: runs, metric series and checkpoint folders."""

from __future__ import annotations

import json
import math
from pathlib import Path

from webapp.runs.models import Checkpoint, Metric, Run


def make_run(owner, name: str = "cpt", **fields) -> Run:
    """A run row with a minimal config (the page never parses it)."""
    fields.setdefault("state", Run.State.RUNNING)
    fields.setdefault("total_steps", 1000)
    return Run.objects.create(owner=owner, name=name, config={}, **fields)


def add_metrics(run: Run, steps, loss=None, kind: str = Metric.Kind.METRIC) -> list[Metric]:
    """Bulk-insert one point per step; ``loss(step)`` gives the loss (default: a smooth decay)."""
    loss = loss or (lambda s: 3.0 * math.exp(-s / 5000) + 1.0)
    rows = [
        Metric(
            run=run,
            kind=kind,
            step=s,
            t=1_700_000_000.0 + s,
            tokens_seen=s * 4096 if kind == Metric.Kind.METRIC else None,
            loss=loss(s) if kind == Metric.Kind.METRIC else None,
            val_loss=loss(s) if kind == Metric.Kind.EVAL else None,
            lr=3e-4 * (1 - s / 100_000) if kind == Metric.Kind.METRIC else None,
            grad_norm=1.0 if kind == Metric.Kind.METRIC else None,
        )
        for s in steps
    ]
    return Metric.objects.bulk_create(rows, batch_size=5000)


def make_checkpoint(run: Run, step: int, files: dict[str, bytes] | None = None) -> Checkpoint:
    """A committed checkpoint folder (with .metadata) and its row."""
    rel = f"checkpoints/step-{step:06d}"
    folder = Path(run.run_dir) / rel
    folder.mkdir(parents=True, exist_ok=True)
    files = files if files is not None else {".metadata": b"m" * 10, "__0_0.distcp": b"x" * 300}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "meta.json").write_text(json.dumps({"step": step}))
    return Checkpoint.objects.create(
        run=run, step=step, path=rel, tokens_seen=step * 4096, loss=2.0, bytes=310
    )
