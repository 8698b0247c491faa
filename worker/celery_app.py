"""The Celery application: the Redis broker, queues and settings for days-long tasks.

Why these settings (Celery with the Redis transport):
- ``worker_prefetch_multiplier=1`` and ``worker_disable_prefetch=True``: with early
  acks a worker would otherwise reserve one extra message per process; a training task
  reserved behind a days-long run waits for days *unacknowledged*, and Redis hands an
  unacknowledged message to another worker after ``visibility_timeout``. With prefetch
  disabled (Redis only, Celery >= 5.6) a worker takes a message only when a process is
  free, so queued runs wait in Redis where any free GPU worker can take them.
- ``task_acks_late=False`` for training (and re-attach) tasks: acked when they start,
  so a run lasting longer than ``visibility_timeout`` is never redelivered and started
  twice. A worker that dies mid-run loses the message on purpose: the run's heartbeat
  stops and the lost-run sweep below decides (re-attach, or lost + auto-resume).
  Even so, the run row's conditional claim (queued -> starting) makes any second
  delivery give up.
- ``visibility_timeout`` stays high (12 h) for the short tasks that do ack late
  (dataset validation, export), so a slow export is not redelivered while it runs.
- ``worker_direct``: each worker also consumes its own queue, so a worker can queue a
  re-attach to itself (the torchrun it must follow lives on its host).
- ``beat_schedule``: the lost-run sweep every RUN_SWEEP_SECONDS (30 s by default), and
  hourly the expiry of uploads abandoned for UPLOAD_ABANDON_HOURS.
"""

from __future__ import annotations

import os

from celery import Celery
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

# How often beat sends the lost-run sweep; small in tests through the environment.
SWEEP_SECONDS = float(os.environ.get("RUN_SWEEP_SECONDS", "30"))
# How often beat sends the expiry of abandoned uploads (they are counted in hours).
UPLOAD_EXPIRY_SECONDS = 3600.0

app = Celery("cpt")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_default_queue="cpu",
    # Each queue with its own exchange and routing key: queues declared by name only
    # share the default exchange and key, and a message for one lands in both.
    task_queues=[
        Queue("gpu", Exchange("gpu", type="direct"), routing_key="gpu"),
        Queue("cpu", Exchange("cpu", type="direct"), routing_key="cpu"),
    ],
    worker_prefetch_multiplier=1,
    worker_disable_prefetch=True,
    worker_direct=True,
    task_acks_late=False,
    task_track_started=True,
    broker_transport_options={"visibility_timeout": 12 * 3600},
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=24 * 3600,
    beat_schedule={
        "sweep-lost-runs": {
            "task": "worker.sweep_runs",
            "schedule": SWEEP_SECONDS,
            # Expires before the next one is due: a backlog of sweeps is pointless.
            "options": {"queue": "cpu", "expires": SWEEP_SECONDS},
        },
        "expire-abandoned-uploads": {
            "task": "worker.expire_uploads",
            "schedule": UPLOAD_EXPIRY_SECONDS,
            "options": {"queue": "cpu", "expires": UPLOAD_EXPIRY_SECONDS},
        },
    },
)
# One task module per area, each owned by the code it wraps.
app.conf.include = [
    "worker.tasks",  # ping, worker registration + heartbeat, lost-run sweep (beat)
    "worker.run_tasks",  # run_training, follow_run
    "worker.dataset_tasks",  # validate_dataset, expire_uploads (beat)
    "worker.checkpoint_tasks",  # export_checkpoint, generate_sample, delete_checkpoint
]
