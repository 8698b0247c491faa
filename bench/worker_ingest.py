"""How fast the worker turns ``events.jsonl`` into database rows, and how fast a claim is.

1. Backlog: ``--events`` metric lines (default 100,000, e.g. a worker that was down
   while a fast run went on) ingested by ``worker.events.drain`` from offset 0:
   seconds, rows/s and MB/s. Then the same replay again (nothing new: the offset
   holds) to show the cost of a follower pass with nothing to do.
2. Live: ``--live`` passes of 10 new lines each, as the follower sees them every
   0.5 s: median and p95 ms per pass.
3. Claims: ``--claims`` runs claimed by 4 threads racing on each (queued ->
   starting): claims/s, and that each run was claimed exactly once.

Uses its own PostgreSQL database (``--db``, created and migrated if missing); the
bench rows are deleted at the end. Usage::

    .venv/bin/python bench/worker_ingest.py [--events 100000] [--live 200] [--claims 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchdb import PG, ensure_database, setup_django  # noqa: E402,F401


def metric_lines(first: int, count: int) -> str:
    out = []
    for step in range(first, first + count):
        data = {
            "loss": 2.0 + 1.0 / step,
            "lr": 3e-5,
            "grad_norm": 0.8,
            "tokens_per_s": 41234.0,
            "mem_gb": 61.2,
            "tokens_seen": step * 4096,
            "step_time": 0.1,
        }
        out.append(
            json.dumps({"v": 1, "t": time.time(), "kind": "metric", "step": step, "data": data})
        )
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="bench_worker")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--live", type=int, default=200)
    parser.add_argument("--claims", type=int, default=200)
    args = parser.parse_args()
    ensure_database(args.db)
    tmp = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    setup_django(args.db, tmp, migrate=True)

    from django.contrib.auth import get_user_model
    from django.db import connection

    from webapp.runs.models import Metric, Run
    from worker import events
    from worker.claim import claim_run

    user, _ = get_user_model().objects.get_or_create(username="bench-worker")
    config = {"model": {"path": "/m"}, "data": {"corpora": [{"path": "dataset://1"}]}}
    run = Run.objects.create(owner=user, name="bench", config=config, state="running", attempt=1)
    path = run.run_dir / "events.jsonl"
    path.parent.mkdir(parents=True)
    try:
        path.write_text(metric_lines(1, args.events))
        size = path.stat().st_size
        t0 = time.perf_counter()
        batch = events.drain(run.pk, path)
        backlog = time.perf_counter() - t0
        assert len(batch.metrics) == args.events == Metric.objects.filter(run=run).count()
        print(
            f"backlog: {args.events} events ({size / 1e6:.1f} MB) in {backlog:.2f} s = "
            f"{args.events / backlog:,.0f} rows/s, {size / 1e6 / backlog:.1f} MB/s"
        )
        t0 = time.perf_counter()
        events.drain(run.pk, path)
        print(f"idle pass (nothing new): {(time.perf_counter() - t0) * 1000:.2f} ms")

        passes = []
        step = args.events + 1
        for _ in range(args.live):
            with path.open("a") as f:
                f.write(metric_lines(step, 10))
            step += 10
            t0 = time.perf_counter()
            events.drain(run.pk, path)
            passes.append((time.perf_counter() - t0) * 1000)
        passes.sort()
        print(
            f"live: {args.live} passes of 10 events: median {statistics.median(passes):.2f} ms, "
            f"p95 {passes[int(len(passes) * 0.95) - 1]:.2f} ms"
        )
        assert Metric.objects.filter(run=run).count() == args.events + 10 * args.live

        runs = [
            Run.objects.create(owner=user, name=f"claim-{i}", config=config).pk
            for i in range(args.claims)
        ]
        wins: list[int] = []
        lock = threading.Lock()

        def racer(name: str) -> None:
            for pk in runs:
                if claim_run(pk, name, "bench"):
                    with lock:
                        wins.append(pk)
            connection.close()

        threads = [threading.Thread(target=racer, args=(f"w{i}",)) for i in range(4)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.perf_counter() - t0
        assert sorted(wins) == sorted(runs), "a run was claimed twice or not at all"
        print(
            f"claims: {args.claims} runs x 4 racing threads in {took:.2f} s = "
            f"{4 * args.claims / took:,.0f} claim attempts/s, each run claimed exactly once"
        )
    finally:
        Run.objects.filter(owner=user).delete()


if __name__ == "__main__":
    main()
