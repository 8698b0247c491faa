"""How fast the run page is for a long run, and how live its charts are.

1. History: a run with ``--points`` (default 1,000,000) Metric rows, COPYed into
   PostgreSQL, then the downsampled history is timed in-process
   (``history.load_history``: a cold load, which fills the Redis tile cache with
   one full aggregation - while a run trains the worker's follower keeps that
   cache warm with ``history.warm_cache`` - then the usual, warm loads) and over HTTP through a real
   uvicorn (``/api/runs/<id>/metrics``), plus the run page itself (``/runs/<id>/``).
2. Live delay: a trainer event line appended to the run's ``events.jsonl`` ->
   the worker's follower (``worker.supervisor.supervise``: ``events.drain`` +
   throttled ``Pusher``, in its own process) -> Redis channel layer -> the
   consumer in uvicorn -> a websocket client. Printed: median, p95, max.

Uses its own PostgreSQL database (``--db``, created and migrated if missing) and
Redis database 13 unless REDIS_URL says otherwise; the bench run is deleted at the
end. Usage::

    .venv/bin/python bench/dashboard_latency.py [--points 1000000] [--events 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchdb import PG, ensure_database, setup_django  # noqa: E402,F401

# Redis database 13 unless REDIS_URL says otherwise (see the docstring).
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")

WORKER_NAME = "bench-follower"


def insert_points(run_id: int, points: int) -> float:
    """COPY ``points`` metric rows (a noisy decaying loss with spikes) plus evals; seconds."""
    import math
    import random

    from django.db import connection

    from webapp.runs.models import Metric

    table = Metric._meta.db_table
    cols = "run_id, kind, attempt, step, t, tokens_seen, loss, lr, grad_norm, tokens_per_s, mem_gb, step_time"
    rng = random.Random(0)
    start = time.perf_counter()
    with connection.cursor() as cursor:
        raw = cursor.connection  # psycopg 3 connection
        with raw.cursor().copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
            for step in range(1, points + 1):
                loss = 1.5 + 2.0 * math.exp(-step / 100_000) + rng.gauss(0, 0.05)
                if step % 99_991 == 0:
                    loss += 5.0  # the spikes the downsampling must keep
                lr = 3e-4 * 0.5 * (1 + math.cos(math.pi * step / points))
                copy.write_row(
                    (run_id, "metric", 1, step, 1.7e9 + step * 0.2, step * 4096, loss, lr,
                     abs(rng.gauss(1, 0.2)), 20480.0, 12.5, 0.2)
                )  # fmt: skip
        with raw.cursor().copy(
            f"COPY {table} (run_id, kind, attempt, step, t, val_loss, val_ppl) FROM STDIN"
        ) as copy:
            for step in range(500, points + 1, 500):
                val = 1.6 + 2.0 * math.exp(-step / 100_000)
                copy.write_row((run_id, "eval", 1, step, 1.7e9 + step * 0.2, val, math.exp(val)))
        cursor.execute(f"ANALYZE {table}")
    return time.perf_counter() - start


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
    return (
        f"median {statistics.median(values) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   "
        f"max {values[-1] * 1000:7.1f} ms   (n={len(values)})"
    )


def follow(run_id: int) -> None:
    """Child process: the worker's real follower loop over a stand-in torchrun."""
    from webapp.runs.models import Run
    from worker.supervisor import Handle, supervise

    run = Run.objects.get(pk=run_id)
    dummy = subprocess.Popen(["sleep", "3600"])
    try:
        supervise(run_id, Handle(dummy.pid, run.run_dir, dummy), WORKER_NAME)
    finally:
        dummy.kill()


async def measure_live(url: str, ws_url: str, cookie: str, events: Path, n: int, start_step: int):
    import websockets

    origin = url
    delays: list[float] = []
    async with websockets.connect(
        ws_url, additional_headers={"Cookie": cookie}, origin=origin
    ) as ws:
        await asyncio.wait_for(ws.recv(), 10)  # the hello with the run's state
        for i in range(n):
            step = start_step + i
            sent = time.time()
            line = {"v": 1, "t": sent, "kind": "metric", "step": step,
                    "data": {"loss": 2.0, "lr": 1e-4, "grad_norm": 1.0,
                             "tokens_per_s": 20480.0, "tokens_seen": step * 4096}}  # fmt: skip
            with events.open("a") as f:
                f.write(json.dumps(line) + "\n")
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 15))
                if any(m["step"] == step for m in msg.get("metrics", [])):
                    delays.append(time.time() - sent)
                    break
            # Spread events so each one meets the follower's poll at a random phase.
            await asyncio.sleep(0.6 + 0.4 * (i % 5) / 5)
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="Metric rows of the run.")
    parser.add_argument("--events", type=int, default=20, help="Events for the live delay.")
    parser.add_argument("--repeat", type=int, default=7, help="Timed history loads.")
    parser.add_argument("--db", default="bench_dashboard", help="PostgreSQL database to use.")
    parser.add_argument("--follow", type=int, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()

    if args.follow:
        setup_django(args.db, Path(os.environ["RUNS_ROOT"]))
        follow(args.follow)
        return

    ensure_database(args.db)
    runs_root = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    setup_django(args.db, runs_root)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from tests.stack import free_port, process, wait_for
    from webapp.runs import history
    from webapp.runs.models import Run

    call_command("migrate", verbosity=0)
    user, _ = get_user_model().objects.get_or_create(username="bench")
    run = Run.objects.create(
        owner=user, name="bench-1M", config={}, state=Run.State.RUNNING,
        total_steps=args.points * 2, step=args.points, worker_name=WORKER_NAME,
    )  # fmt: skip
    try:
        print(f"inserting {args.points:,} metric rows (+ evals) with COPY ...", flush=True)
        print(f"  insert: {insert_points(run.pk, args.points):.1f} s")
        cold = timed(lambda: history.load_history(run), 1)
        print(
            "history.load_history, cold tile cache (only after a Redis flush: the worker's "
            f"follower warms it every minute while a run trains): {cold[0] * 1000:.0f} ms"
        )
        result = history.load_history(run)
        n = len(result["metrics"])
        print(f"history: {n} points returned (downsampled={result['downsampled']})")
        warm = timed(lambda: history.load_history(run), args.repeat)
        print(f"history.load_history, in process:   {ms(warm)}")

        client = Client()
        client.force_login(user)
        cookie = f"sessionid={client.cookies['sessionid'].value}"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env["DJANGO_SETTINGS_MODULE"] = "webapp.settings"
        logs = runs_root / "logs"
        uvicorn = [sys.executable, "-m", "uvicorn", "webapp.asgi:application",
                   "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]  # fmt: skip
        with process(uvicorn, logs / "uvicorn.log", env):
            wait_for(lambda: _get(f"{url}/healthz", cookie) is not None, 60, what="uvicorn")
            api = f"{url}/api/runs/{run.pk}/metrics"
            size = len(_get(api, cookie))
            print(
                f"GET /api/runs/<id>/metrics over HTTP: {ms(timed(lambda: _get(api, cookie), args.repeat))}   ({size / 1e6:.2f} MB JSON)"
            )
            page = f"{url}/runs/{run.pk}/"
            print(
                f"GET /runs/<id>/ (the page):           {ms(timed(lambda: _get(page, cookie), args.repeat))}"
            )

            run.run_dir.mkdir(parents=True, exist_ok=True)
            events = run.run_dir / "events.jsonl"
            events.touch()
            follower = [sys.executable, __file__, "--db", args.db, "--follow", str(run.pk)]
            with process(follower, logs / "follower.log", env):
                time.sleep(2)  # the follower's first push
                ws_url = f"ws://127.0.0.1:{port}/ws/runs/{run.pk}/"
                delays = asyncio.run(
                    measure_live(url, ws_url, cookie, events, args.events, args.points + 1)
                )
            print(f"event line -> websocket client (worker follower, poll 0.5 s): {ms(delays)}")
    finally:
        run.delete()


def _get(url: str, cookie: str) -> bytes | None:
    import urllib.request

    request = urllib.request.Request(url, headers={"Cookie": cookie})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()
    except OSError:
        return None


if __name__ == "__main__":
    main()
