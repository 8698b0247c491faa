"""The run page's websocket: joins the run's group and forwards the worker's batches.

Mounted behind ``AllowedHostsOriginValidator`` and ``AuthMiddlewareStack`` (see
``webapp/asgi.py``). The socket only notifies; the HTTP history endpoint stays
the source of truth, so a client that reconnects asks for ``?after=<step>``.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from webapp.accounts.permissions import visible_to
from webapp.runs.models import Run
from webapp.runs.serializers import group_name, run_summary

# Close codes (4000-4999 are the application's): the page stops reconnecting on these.
# A refusal is sent as accept-then-close: a socket closed during the handshake reaches
# the browser as a bare 1006, which it could not tell from a network drop.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class RunConsumer(AsyncJsonWebsocketConsumer):
    """One browser tab watching one run."""

    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self._refuse(CLOSE_UNAUTHENTICATED)
            return
        run_id = self.scope["url_route"]["kwargs"]["run_id"]
        summary = await _visible_summary(user, run_id)
        if summary is None:
            # Another user's run and a missing run look the same (as the 404s do).
            await self._refuse(CLOSE_FORBIDDEN)
            return
        self.group = group_name(run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        # The current state first, so the header is fresh even if the page was cached.
        await self.send_json({"run": summary})

    async def _refuse(self, code: int) -> None:
        await self.accept()
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Browsers have nothing to say on this socket; ignore whatever arrives."""

    async def run_update(self, event: dict[str, Any]) -> None:
        """A ``run.update`` group message from ``serializers.broadcast``: pass it on."""
        await self.send_json(event["payload"])


@database_sync_to_async
def _visible_summary(user: Any, run_id: int) -> dict[str, Any] | None:
    run = visible_to(user, Run.objects.select_related("owner")).filter(pk=run_id).first()
    return run_summary(run) if run else None
