"""Runs and everything the worker records about them.

The run directory (``RUNS_ROOT/<id>/``) and its ``events.jsonl`` are the source
of truth; these rows are the worker's index of it (see shared DESIGN.md).
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models


class Run(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        PREPARING = "preparing"  # corpora being tokenized for this run's tokenizer
        STARTING = "starting"  # claimed by a worker, torchrun being launched
        RUNNING = "running"
        STOPPING = "stopping"  # stop requested, waiting for the checkpoint
        STOPPED = "stopped"
        COMPLETED = "completed"
        PREEMPTED = "preempted"
        FAILED = "failed"
        LOST = "lost"  # heartbeat too old: worker or host gone

    ACTIVE_STATES = (State.QUEUED, State.PREPARING, State.STARTING, State.RUNNING, State.STOPPING)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    name = models.CharField(max_length=200)
    # The TrainConfig as JSON; corpora paths are dataset://<id> until the worker resolves them.
    config = models.JSONField()
    base_model = models.ForeignKey(
        "basemodels.BaseModel", null=True, blank=True, on_delete=models.PROTECT
    )
    datasets = models.ManyToManyField("datasets.Dataset", through="RunDataset", blank=True)

    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED)
    message = models.TextField(blank=True, help_text="Last status message, or the failure.")
    progress = models.JSONField(default=dict, blank=True, help_text="Preparation progress.")
    attempt = models.PositiveIntegerField(default=0, help_text="Launches so far (resume adds one).")
    restarts = models.PositiveIntegerField(default=0, help_text="Automatic resumes after loss.")
    resume_from = models.CharField(
        max_length=300, blank=True, help_text="Checkpoint folder (relative) the next attempt loads."
    )
    stop_requested = models.BooleanField(default=False)

    total_steps = models.PositiveIntegerField(null=True, blank=True)
    step = models.PositiveIntegerField(default=0)
    tokens_seen = models.BigIntegerField(default=0)
    last_loss = models.FloatField(null=True, blank=True)
    last_val_loss = models.FloatField(null=True, blank=True)
    tokens_per_s = models.FloatField(null=True, blank=True)
    mfu = models.FloatField(null=True, blank=True)

    worker_name = models.CharField(max_length=200, blank=True)
    host = models.CharField(max_length=200, blank=True)
    pid = models.IntegerField(null=True, blank=True, help_text="torchrun's pid = process group.")
    events_offset = models.BigIntegerField(default=0, help_text="Bytes of events.jsonl ingested.")
    trainer_status = models.CharField(
        max_length=20, blank=True, help_text="Last state in the trainer's status events."
    )
    exit_code = models.IntegerField(null=True, blank=True, help_text="torchrun's exit status.")
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state"]), models.Index(fields=["owner", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"

    @property
    def run_dir(self) -> Path:
        """Server-side run directory; never built from browser input."""
        return Path(settings.RUNS_ROOT) / str(self.pk)

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES


class RunDataset(models.Model):
    """A dataset in a run's mix, with its weight."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE)
    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.PROTECT)
    weight = models.FloatField(default=1.0)

    class Meta:
        unique_together = [("run", "dataset")]

    def __str__(self) -> str:
        return f"{self.dataset_id} x{self.weight} in run {self.run_id}"


class Metric(models.Model):
    """One metric or eval event. Columns (not JSON) so history can be downsampled in SQL."""

    class Kind(models.TextChoices):
        METRIC = "metric"
        EVAL = "eval"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metrics")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.METRIC)
    attempt = models.PositiveIntegerField(default=1)
    step = models.PositiveIntegerField()
    t = models.FloatField(help_text="Unix time the trainer wrote the event.")
    tokens_seen = models.BigIntegerField(null=True, blank=True)
    loss = models.FloatField(null=True, blank=True)
    lr = models.FloatField(null=True, blank=True)
    grad_norm = models.FloatField(null=True, blank=True)
    tokens_per_s = models.FloatField(null=True, blank=True)
    mfu = models.FloatField(null=True, blank=True)
    mem_gb = models.FloatField(null=True, blank=True)
    step_time = models.FloatField(null=True, blank=True)
    val_loss = models.FloatField(null=True, blank=True)
    val_ppl = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["step"]
        # One point per (run, kind, step): a resumed attempt replaces the abandoned
        # timeline after its checkpoint (the worker deletes those rows first).
        constraints = [
            models.UniqueConstraint(fields=["run", "kind", "step"], name="metric_unique_step")
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.kind} @ {self.step}"


class Checkpoint(models.Model):
    """A committed checkpoint folder (its .metadata exists) in the run directory."""

    class ExportState(models.TextChoices):
        NONE = ""
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="checkpoints")
    step = models.PositiveIntegerField()
    path = models.CharField(max_length=300, help_text="Relative to the run directory.")
    tokens_seen = models.BigIntegerField(null=True, blank=True)
    loss = models.FloatField(null=True, blank=True)
    val_loss = models.FloatField(null=True, blank=True)
    bytes = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    deleted = models.BooleanField(default=False, help_text="Removed by retention or by a user.")
    export_state = models.CharField(
        max_length=10, choices=ExportState.choices, default=ExportState.NONE, blank=True
    )
    export_path = models.CharField(max_length=1000, blank=True)
    export_error = models.TextField(blank=True)

    class Meta:
        ordering = ["step"]
        constraints = [
            models.UniqueConstraint(fields=["run", "step"], name="checkpoint_unique_step")
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.path}"


class Sample(models.Model):
    """Text generated from a checkpoint by a worker task."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="samples")
    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.CASCADE, related_name="samples")
    prompt = models.TextField()
    params = models.JSONField(default=dict, blank=True)  # temperature, top_p, max_new_tokens
    output = models.TextField(blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"sample {self.pk} of run {self.run_id}"


class WorkerHost(models.Model):
    """A Celery worker that reported itself alive (heartbeat thread in the worker process)."""

    name = models.CharField(max_length=200, unique=True, help_text="Celery node name.")
    host = models.CharField(max_length=200)
    gpus = models.JSONField(default=list, blank=True, help_text="[{name, memory_gb}]")
    queues = models.JSONField(default=list, blank=True)
    last_seen = models.DateTimeField()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
