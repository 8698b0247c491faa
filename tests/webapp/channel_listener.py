"""A listener on the real Redis channel layer, for tests of what the run page is told."""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from webapp.runs.serializers import group_name


class Listener:
    """A channel that joins run groups (``with Listener() as listening:``); leaves them at exit."""

    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.channel = async_to_sync(self.layer.new_channel)()
        self.groups: list[str] = []

    def join(self, run_id: int) -> None:
        """Receive what is broadcast to run ``run_id``."""
        async_to_sync(self.layer.group_add)(group_name(run_id), self.channel)
        self.groups.append(group_name(run_id))

    def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next message (``{"type": "run.update", "payload": {...}}``); fails after ``timeout``."""

        async def next_message() -> dict[str, Any]:
            return await asyncio.wait_for(self.layer.receive(self.channel), timeout)

        return async_to_sync(next_message)()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        for group in self.groups:
            async_to_sync(self.layer.group_discard)(group, self.channel)
