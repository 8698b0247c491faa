"""The run websocket: auth, origin, permission, and forwarding of the worker's batches.

Driven through ``webapp.asgi.application`` (origin validator + auth stack + router)
with the real Redis channel layer; the session cookie comes from a real login.
"""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from tests.webapp.runpage_helpers import make_run
from webapp.asgi import application
from webapp.runs.serializers import broadcast

# The consumer reads the database from another thread: rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://127.0.0.1:8000")


def _cookie(client, user) -> tuple[bytes, bytes]:
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


def _socket(run_id: int, *headers: tuple[bytes, bytes]) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=list(headers))


def test_owner_connects_gets_the_run_state_and_receives_forwarded_batches(client, alice):
    run = make_run(alice, step=42)
    cookie = _cookie(client, alice)

    async def scenario():
        ws = _socket(run.pk, ORIGIN, cookie)
        connected, _ = await ws.connect()
        assert connected
        hello = await ws.receive_json_from(timeout=5)
        assert hello["run"]["id"] == run.pk and hello["run"]["step"] == 42
        payload = {
            "metrics": [{"kind": "metric", "step": 43, "loss": 2.5}],
            "log": ["step 43 loss 2.5"],
        }
        await sync_to_async(broadcast)(run.pk, payload)
        assert await ws.receive_json_from(timeout=5) == payload
        await ws.disconnect()

    asyncio.run(scenario())


async def _refusal_code(ws) -> int:
    """The close code of a refused socket: accepted, sent nothing, then closed."""
    connected, _ = await ws.connect()
    assert connected  # accept-then-close, so the browser sees the code, not a bare 1006
    message = await ws.receive_output(timeout=5)
    assert message["type"] == "websocket.close"
    return message["code"]


def test_it_refuses_anonymous_users(alice):
    run = make_run(alice)

    async def scenario():
        ws = _socket(run.pk, ORIGIN)
        assert await _refusal_code(ws) == 4401

    asyncio.run(scenario())


def test_it_refuses_a_foreign_origin(client, alice):
    run = make_run(alice)
    cookie = _cookie(client, alice)

    async def scenario():
        ws = _socket(run.pk, (b"origin", b"http://evil.example.com"), cookie)
        connected, _ = await ws.connect()
        assert not connected

    asyncio.run(scenario())


def test_it_rejects_other_users_run(client, alice, bob):
    run = make_run(alice)
    cookie = _cookie(client, bob)

    async def scenario():
        ws = _socket(run.pk, ORIGIN, cookie)
        assert await _refusal_code(ws) == 4403

    asyncio.run(scenario())


def test_staff_may_watch_any_run_and_other_runs_messages_do_not_leak(client, alice, staff):
    run = make_run(alice)
    other = make_run(alice, name="other")
    cookie = _cookie(client, staff)

    async def scenario():
        ws = _socket(run.pk, ORIGIN, cookie)
        connected, _ = await ws.connect()
        assert connected
        await ws.receive_json_from(timeout=5)  # the hello
        await sync_to_async(broadcast)(other.pk, {"log": ["not for this socket"]})
        await sync_to_async(broadcast)(run.pk, {"log": ["for this socket"]})
        assert await ws.receive_json_from(timeout=5) == {"log": ["for this socket"]}
        assert await ws.receive_nothing(timeout=0.3)
        await ws.disconnect()

    asyncio.run(scenario())
