"""Celery tasks (run_tasks): launch a run, or follow one again after a worker restart.

Both ack early (``acks_late=False``): a task holding a days-long run must never be
redelivered by the broker. If the worker dies, the run's heartbeat stops and the
lost-run sweep (worker.tasks) decides what happens; the claim below makes a second
delivery of the same message harmless anyway.
"""

from __future__ import annotations

import logging
from datetime import datetime

from worker.celery_app import app

# Imported here, in the worker's main process, so the pool processes forked from it start
# with torch, tokenizers and the trainer already loaded: a first task does not spend
# many seconds importing them (the web app never imports this module).
import torch  # noqa: E402, F401  isort: skip
from transformers import AutoTokenizer  # noqa: E402, F401  isort: skip

import worker.runner  # noqa: E402, F401  isort: skip

log = logging.getLogger(__name__)


@app.task(name="worker.run_training", bind=True, acks_late=False, ignore_result=True)
def run_training(self, run_id: int) -> str:
    """Claim a queued run (queued -> starting), prepare its data, run torchrun to the end."""
    from worker import hosts
    from worker.claim import claim_run
    from worker.runner import start_run

    worker_name = self.request.hostname or "local"
    if not claim_run(run_id, worker_name, hosts.host_name()):
        log.info("run %s is not queued any more (claimed elsewhere or stopped): skipping", run_id)
        return "skipped"
    return start_run(run_id, worker_name) or "handed over"


@app.task(name="worker.follow_run", bind=True, acks_late=False, ignore_result=True)
def follow_run(self, run_id: int, seen_worker: str, seen_heartbeat: str | None) -> str:
    """Re-attach to a run's live torchrun on this host and follow it from the stored offset."""
    from worker.runner import reattach

    seen = datetime.fromisoformat(seen_heartbeat) if seen_heartbeat else None
    return reattach(run_id, self.request.hostname or "local", seen_worker, seen) or "skipped"


def send_follow(worker_name: str):
    """A callback queueing :func:`follow_run` on ``worker_name``'s own queue (same host)."""
    from celery.utils.nodenames import worker_direct

    def send(run_id: int, seen_worker: str, seen_heartbeat) -> None:
        follow_run.apply_async(
            args=[run_id, seen_worker, seen_heartbeat.isoformat() if seen_heartbeat else None],
            queue=worker_direct(worker_name),
        )

    return send
