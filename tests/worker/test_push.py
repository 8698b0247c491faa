"""Pushes to the run's Channels group (real channels_redis): batched and throttled."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from webapp.runs.models import Run
from webapp.runs.serializers import group_name
from worker import events
from worker.push import Pusher

from .helpers import append, make_run, metric_line

pytestmark = pytest.mark.django_db


@pytest.fixture
def listener():
    """A channel in a run's group on the real Redis channel layer."""
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    joined: list[str] = []

    def join(run_id: int) -> str:
        async_to_sync(layer.group_add)(group_name(run_id), channel)
        joined.append(group_name(run_id))
        return channel

    def receive(count: int = 1) -> list[dict]:
        # One event loop for all reads: channels_redis buffers per loop.
        async def collect() -> list[dict]:
            return [await asyncio.wait_for(layer.receive(channel), 10) for _ in range(count)]

        return async_to_sync(collect)()

    yield join, receive
    for group in joined:
        async_to_sync(layer.group_discard)(group, channel)


def test_one_push_carries_every_new_row_and_log_line(alice, listener):
    join, receive = listener
    run = make_run(alice, state=Run.State.STARTING, attempt=1)
    join(run.pk)
    pusher = Pusher(run.pk, run.run_dir, interval=60)
    path = run.run_dir / "events.jsonl"
    append(path, "".join(metric_line(s) for s in range(1, 6)))
    append(run.run_dir / "train.log", "loading\nstep 5\npartial")
    pusher.add(events.drain(run.pk, path))
    assert pusher.push()
    (message,) = receive()
    payload = message["payload"]
    assert message["type"] == "run.update"
    assert [m["step"] for m in payload["metrics"]] == [1, 2, 3, 4, 5]
    assert payload["run"]["state"] == Run.State.RUNNING and payload["run"]["step"] == 5
    assert payload["log"] == ["loading", "step 5"]  # the unfinished line waits


def test_pushes_are_throttled_and_the_next_one_carries_what_waited(alice, listener):
    join, receive = listener
    run = make_run(alice, state=Run.State.STARTING, attempt=1)
    join(run.pk)
    pusher = Pusher(run.pk, run.run_dir, interval=60)
    path = run.run_dir / "events.jsonl"
    append(path, metric_line(1))
    pusher.add(events.drain(run.pk, path))
    assert pusher.maybe_push()
    for step in (2, 3):
        append(path, metric_line(step))
        pusher.add(events.drain(run.pk, path))
        assert not pusher.maybe_push()  # within the interval: held back
    assert pusher.push(force=True)
    first, second = receive(2)
    assert [m["step"] for m in first["payload"]["metrics"]] == [1]
    assert [m["step"] for m in second["payload"]["metrics"]] == [2, 3]


def test_nothing_new_means_no_push(alice):
    run = make_run(alice, state=Run.State.RUNNING)
    pusher = Pusher(run.pk, run.run_dir, interval=0)
    assert pusher.push()  # the first announces the follower
    assert not pusher.maybe_push()
