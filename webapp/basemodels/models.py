"""A base model that runs continue pretraining from."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class BaseModel(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    name = models.CharField(max_length=200)
    # What the user typed: a local directory or a hub id (resolved only from the local cache).
    source = models.CharField(max_length=500)
    # The directory that from_pretrained loads (source itself, or the cache snapshot).
    path = models.CharField(max_length=1000)
    architecture = models.CharField(max_length=200, blank=True)
    num_params = models.BigIntegerField(null=True, blank=True)
    vocab_size = models.IntegerField(null=True, blank=True)
    max_context = models.IntegerField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name
