"""Plain dicts for runs, metrics and checkpoints: one shape for the JSON API, the
websocket payloads and the run page, so the browser has one format to read.

Websocket contract (worker -> browser): the worker calls :func:`broadcast` with a
payload ``{"run": run_summary, "metrics": [metric_dict...], "checkpoints":
[checkpoint_dict...], "log": [lines...]}`` (any key may be absent); the consumer
in ``consumers.py`` forwards it to every browser in group ``run-<id>`` as JSON.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from webapp.runs.models import Checkpoint, Metric, Run, Sample
from webapp.runs.public_errors import scrub_paths, server_roots

METRIC_FIELDS = (
    "kind",
    "step",
    "t",
    "tokens_seen",
    "loss",
    "lr",
    "grad_norm",
    "tokens_per_s",
    "mfu",
    "mem_gb",
    "step_time",
    "val_loss",
    "val_ppl",
)


def group_name(run_id: int) -> str:
    """The Channels group a run's updates go to."""
    return f"run-{run_id}"


def metric_dict(m: Metric) -> dict[str, Any]:
    return {f: getattr(m, f) for f in METRIC_FIELDS}


def checkpoint_dict(c: Checkpoint) -> dict[str, Any]:
    return {
        "id": c.pk,
        "step": c.step,
        "path": c.path,
        "tokens_seen": c.tokens_seen,
        "loss": c.loss,
        "val_loss": c.val_loss,
        "bytes": c.bytes,
        "created_at": c.created_at.isoformat() if c.created_at else None,
        "deleted": c.deleted,
        "export_state": c.export_state,
        "export_path": c.export_path,
        "export_error": _public(c.export_error, c.run_id),
    }


def run_summary(r: Run) -> dict[str, Any]:
    return {
        "id": r.pk,
        "name": r.name,
        "owner": r.owner.username if r.owner_id else None,
        "state": r.state,
        "message": r.message,
        "progress": r.progress,
        "attempt": r.attempt,
        "step": r.step,
        "total_steps": r.total_steps,
        "tokens_seen": r.tokens_seen,
        "last_loss": r.last_loss,
        "last_val_loss": r.last_val_loss,
        "tokens_per_s": r.tokens_per_s,
        "mfu": r.mfu,
        "host": r.host,
        "created_at": r.created_at.isoformat() if r.created_at else None,
        "started_at": r.started_at.isoformat() if r.started_at else None,
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
        "heartbeat_at": r.heartbeat_at.isoformat() if r.heartbeat_at else None,
    }


def sample_dict(s: Sample) -> dict[str, Any]:
    """A generated sample (payload key "samples", added by the run page)."""
    return {
        "id": s.pk,
        "checkpoint": s.checkpoint_id,
        "prompt": s.prompt,
        "params": s.params,
        "output": s.output,
        "state": s.state,
        "error": _public(s.error, s.run_id),
        "created_at": s.created_at.isoformat() if s.created_at else None,
    }


def _public(error: str, run_id: int) -> str:
    # The worker stores errors already scrubbed; scrubbing again on the way out also
    # covers rows written before it did, or by any other path.
    return scrub_paths(error, server_roots(run_id)) if error else ""


def broadcast(run_id: int, payload: dict[str, Any]) -> None:
    """Push one update to the browsers watching a run (best effort: the HTTP history
    endpoint is the source of truth, channels_redis may drop messages to full channels)."""
    layer = get_channel_layer()
    if layer is None:
        return
    async_to_sync(layer.group_send)(group_name(run_id), {"type": "run.update", "payload": payload})
