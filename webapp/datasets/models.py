"""A dataset is one uploaded corpus file and what validation learned about it."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models


class Dataset(models.Model):
    class State(models.TextChoices):
        UPLOADING = "uploading"
        VALIDATING = "validating"
        READY = "ready"
        REJECTED = "rejected"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    name = models.CharField(max_length=200)
    # Sanitized original file name (its extension decides decompression); never a path.
    filename = models.CharField(max_length=255)
    text_field = models.CharField(max_length=100, default="text")
    size_bytes = models.BigIntegerField(help_text="Total size declared when the upload began.")
    received_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, help_text="Expected sha256 (hex), checked at the end.")
    state = models.CharField(max_length=20, choices=State.choices, default=State.UPLOADING)
    # Validation profile: documents, bytes, est_tokens, bad lines (kind, line, excerpt), samples.
    stats = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def storage_dir(self) -> Path:
        """Server-chosen folder for this dataset's file (ids only, nothing from the browser)."""
        return Path(settings.MEDIA_ROOT) / "datasets" / str(self.pk)

    @property
    def file_path(self) -> Path:
        """The complete file, once the upload finished and its sha256 matched."""
        return self.storage_dir / self.filename

    @property
    def partial_path(self) -> Path:
        """Where chunks are appended while uploading."""
        return self.storage_dir / (self.filename + ".part")
