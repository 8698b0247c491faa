"""The Celery application: the Redis broker, queues and settings for days-long tasks.

Why these settings:
- ``worker_prefetch_multiplier=1``: a worker holds one training task at a time; a
  prefetched second task would wait for days behind the first.
- ``task_acks_late=False`` for training: with Redis, an unacknowledged task is
  redelivered after ``visibility_timeout``; a run lasting longer would be started
  twice. Training tasks therefore ack on receipt and guard against double starts
  with the run row's conditional claim (queued -> starting); lost runs are
  detected by heartbeat instead of by redelivery.
- ``visibility_timeout`` is still set high (12 h) for the short tasks that do ack
  late, so a slow export is not redelivered while it runs.
"""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("cpt")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_default_queue="cpu",
    task_queues=[Queue("gpu"), Queue("cpu")],
    worker_prefetch_multiplier=1,
    task_acks_late=False,
    task_track_started=True,
    broker_transport_options={"visibility_timeout": 12 * 3600},
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=24 * 3600,
)
# One task module per area, each owned by the code it wraps.
app.conf.include = [
    "worker.tasks",  # ping, worker heartbeat, lost-run sweep (beat)
    "worker.run_tasks",  # run_training
    "worker.dataset_tasks",  # validate_dataset
    "worker.checkpoint_tasks",  # export_checkpoint, generate_sample
]
