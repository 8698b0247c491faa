"""Real Celery workers, a ready dataset and a tiny-model run config for the end-to-end tests."""

from __future__ import annotations

import hashlib
import shutil
import signal
from pathlib import Path
from typing import Any

from tests.stack import celery_worker_args, service_env
from webapp.datasets.models import Dataset
from webapp.runs.models import Metric, Run
from worker import launcher

# Small limits so stop, loss and the sweep happen within seconds.
WORKER_ENV = {
    "RUN_STOP_GRACE_SECONDS": "30",
    "RUN_HEARTBEAT_SECONDS": "1",
    "RUN_LOST_AFTER_SECONDS": "6",
    "RUN_SWEEP_SECONDS": "2",
    "OMP_NUM_THREADS": "1",
}


def worker_env() -> dict[str, str]:
    return service_env(**WORKER_ENV)


def worker_args(name: str, beat_schedule: Path | None = None) -> list[str]:
    """A worker on the gpu and cpu queues; with ``beat_schedule`` it also runs Celery beat."""
    args = celery_worker_args(name=name)
    if beat_schedule is not None:
        args += ["-B", "--schedule", str(beat_schedule)]
    return args


def ready_dataset(owner, corpus: Path) -> Dataset:
    """A dataset row whose upload finished and validated (as the datasets app leaves it)."""
    data = corpus.read_bytes()
    ds = Dataset.objects.create(
        owner=owner,
        name="docstrings",
        filename="corpus.jsonl",
        size_bytes=len(data),
        received_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        state=Dataset.State.READY,
    )
    ds.storage_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(corpus, ds.file_path)
    return ds


def tiny_config(model_dir: Path, dataset: Dataset, steps: int, **checkpoint: Any) -> dict:
    """Two CPU ranks, seq_len 32, a metric every step, a checkpoint every 4 steps."""
    return {
        "name": "tiny",
        "log_interval": 1,
        "model": {"path": str(model_dir)},
        "data": {
            "corpora": [{"path": f"dataset://{dataset.pk}"}],
            "seq_len": 32,
            "micro_batch_size": 2,
        },
        "schedule": {"total_steps": steps, "warmup_steps": 2},
        "eval": {"interval": 0, "batches": 1},
        "checkpoint": {"interval": 4, "keep": 2, **checkpoint},
        "parallel": {"nproc_per_node": 2, "device": "cpu"},
    }


def run_state(run_id: int) -> Run:
    return Run.objects.get(pk=run_id)


def metric_steps(run_id: int) -> list[int]:
    return list(
        Metric.objects.filter(run_id=run_id, kind="metric")
        .order_by("step")
        .values_list("step", flat=True)
    )


def kill_worker(proc) -> None:
    """SIGKILL a worker's whole process group, as when its host's OOM killer strikes."""
    launcher.signal_group(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def kill_torchruns(*run_ids: int) -> None:
    """Test cleanup: torchrun lives in its own session and would outlive the worker."""
    for run in Run.objects.filter(pk__in=run_ids, pid__isnull=False):
        if launcher.is_alive(run.pid, run.run_dir):
            launcher.kill_tree(run.pid)
