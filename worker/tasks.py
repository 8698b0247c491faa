"""Celery tasks: ping, the lost-run sweep (beat), and this worker's registration.

Registration and the worker heartbeat live in the worker's main process (Celery
signals plus a small thread), not in tasks: a heartbeat task would queue behind
days-long training tasks and make a busy worker look dead.
"""

from __future__ import annotations

import logging
import threading

from celery.signals import worker_ready, worker_shutdown

from worker.celery_app import app

log = logging.getLogger(__name__)


@app.task(name="worker.ping")
def ping() -> str:
    """A round trip through the broker, used by health checks and tests."""
    return "pong"


@app.task(name="worker.sweep_runs", bind=True, ignore_result=True)
def sweep_runs(self) -> dict[str, list[int]]:
    """Mark runs with a stale heartbeat lost (auto-resuming them), or re-attach here."""
    from worker.recovery import sweep
    from worker.run_tasks import send_follow

    return sweep(send_follow(self.request.hostname) if self.request.hostname else None)


class _Heartbeat(threading.Thread):
    """Refreshes this worker's WorkerHost row every RUN_HEARTBEAT_SECONDS."""

    def __init__(self, name: str, queues: list[str]) -> None:
        super().__init__(name="worker-heartbeat", daemon=True)
        self.worker_name, self.queues = name, queues
        self.stopped = threading.Event()

    def run(self) -> None:
        from django.conf import settings
        from django.db import close_old_connections

        from worker import hosts

        while not self.stopped.wait(settings.RUN_HEARTBEAT_SECONDS):
            try:
                if not hosts.beat(self.worker_name):
                    hosts.register(self.worker_name, self.queues)
            except Exception:  # the database may be briefly away; try again next beat
                log.exception("worker heartbeat failed")
                close_old_connections()


_heartbeat: _Heartbeat | None = None


@worker_ready.connect
def _on_worker_ready(sender, **kwargs) -> None:
    """Register this worker, start its heartbeat, re-attach to its surviving runs."""
    global _heartbeat
    from worker import hosts
    from worker.recovery import on_worker_start
    from worker.run_tasks import send_follow

    name = sender.hostname
    queues = sorted(sender.app.amqp.queues.consume_from)
    hosts.register(name, queues)
    _heartbeat = _Heartbeat(name, queues)
    _heartbeat.start()
    reattached = on_worker_start(name, send_follow(name))
    if reattached:
        log.info("re-attaching to runs %s", reattached)


@worker_shutdown.connect
def _on_worker_shutdown(sender, **kwargs) -> None:
    """A clean shutdown leaves the workers page at once."""
    from worker import hosts

    if _heartbeat is not None:
        _heartbeat.stopped.set()
        try:
            hosts.unregister(_heartbeat.worker_name)
        except Exception:
            log.exception("could not unregister worker")
