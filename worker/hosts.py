"""This host: its GPUs, its WorkerHost row, and how many processes a run may start here."""

from __future__ import annotations

import socket
from datetime import timedelta
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from trainer.config import TrainConfig
from webapp.runs.models import Run, WorkerHost


def host_name() -> str:
    """The name runs and workers record as their host (pid checks only mean anything here)."""
    return socket.gethostname()


@lru_cache(maxsize=1)
def gpus() -> list[dict[str, Any]]:
    """[{index, name, memory_gb}] of the visible CUDA devices; WORKER_GPUS=N caps the list
    (0 = treat the host as CPU-only), -1 uses every device torch.cuda finds."""
    import torch

    found: list[dict[str, Any]] = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            found.append(
                {"index": i, "name": props.name, "memory_gb": round(props.total_memory / 2**30, 1)}
            )
    limit = settings.WORKER_GPUS
    return found if limit < 0 else found[:limit]


class HostError(ValueError):
    """A run this host cannot start; the message names the config field."""


def nproc_for(config: TrainConfig, gpu_count: int) -> int:
    """Processes to start: the run's nproc_per_node, checked against this host's GPUs."""
    par = config.parallel
    if par.nnodes != 1:
        raise HostError("parallel.nnodes: this worker launches single-node runs only")
    if par.device == "cuda" and gpu_count == 0:
        raise HostError("parallel.device: cuda requested but this host has no GPU")
    if par.device != "cpu" and gpu_count and par.nproc_per_node > gpu_count:
        raise HostError(
            f"parallel.nproc_per_node: {par.nproc_per_node} processes but this host has "
            f"{gpu_count} GPU(s)"
        )
    return par.nproc_per_node


def register(name: str, queues: list[str]) -> WorkerHost:
    """Create or refresh this worker's row (called at start and by its heartbeat)."""
    row, _ = WorkerHost.objects.update_or_create(
        name=name,
        defaults={
            "host": host_name(),
            "gpus": gpus(),
            "queues": queues,
            "last_seen": timezone.now(),
        },
    )
    return row


def beat(name: str) -> bool:
    """Refresh last_seen; False if the row is gone (then the caller registers again)."""
    return bool(WorkerHost.objects.filter(name=name).update(last_seen=timezone.now()))


def unregister(name: str) -> None:
    """A worker shutting down cleanly leaves the page at once."""
    WorkerHost.objects.filter(name=name).delete()


def alive_workers(visible_runs=None) -> list[dict[str, Any]]:
    """Workers seen within the lost-run limit, each with the runs it follows now.

    ``visible_runs`` (a Run queryset) limits the runs listed, e.g. to a user's own.
    """
    since = timezone.now() - timedelta(seconds=settings.RUN_LOST_AFTER_SECONDS)
    workers = list(WorkerHost.objects.filter(last_seen__gte=since))
    runs = (
        (visible_runs if visible_runs is not None else Run.objects.all())
        .filter(Q(worker_name__in=[w.name for w in workers]), state__in=Run.ACTIVE_STATES)
        .select_related("owner")
    )
    by_worker: dict[str, list[Run]] = {}
    for run in runs:
        by_worker.setdefault(run.worker_name, []).append(run)
    return [{"worker": w, "runs": by_worker.get(w.name, [])} for w in workers]
