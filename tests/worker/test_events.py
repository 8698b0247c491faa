"""The event follower: complete lines only, from the stored offset, exactly once."""

from __future__ import annotations

import pytest

from webapp.runs.models import Checkpoint, Metric, Run
from worker import events
from worker.events import read_events

from .helpers import append, commit_checkpoint, event_line, make_run, metric_line

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(alice):
    return make_run(alice, state=Run.State.STARTING, attempt=1)


def test_it_reads_only_complete_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    append(path, metric_line(1) + metric_line(2)[:20])
    read = read_events(path, 0)
    assert [e["step"] for e in read.events] == [1]
    assert read.end == len(metric_line(1))
    append(path, metric_line(2)[20:])
    again = read_events(path, read.end)
    assert [e["step"] for e in again.events] == [2]
    assert again.end == path.stat().st_size


def test_it_skips_bad_lines_and_names_their_byte_offset(tmp_path):
    path = tmp_path / "events.jsonl"
    append(path, metric_line(1) + "{not json\n" + '{"v": 2, "kind": "metric"}\n' + metric_line(2))
    read = read_events(path, 0)
    assert [e["step"] for e in read.events] == [1, 2]
    assert len(read.bad_lines) == 2
    assert read.bad_lines[0].startswith(f"byte {len(metric_line(1))}:")
    assert read.end == path.stat().st_size


def test_a_missing_file_reads_as_nothing_new(tmp_path):
    read = read_events(tmp_path / "absent.jsonl", 7)
    assert (read.events, read.start, read.end) == ([], 7, 7)


def test_it_stores_metrics_checkpoints_and_state(run):
    path = run.run_dir / "events.jsonl"
    commit_checkpoint(run.run_dir, 2)
    append(path, event_line("status", {"state": "running", "message": "started"}, 0))
    append(path, metric_line(1, loss=3.0) + metric_line(2, loss=2.5))
    append(path, event_line("eval", {"val_loss": 2.4, "val_ppl": 11.0}, 2))
    append(path, event_line("checkpoint", {"path": "checkpoints/step-000002", "bytes": 10}, 2))
    batch = events.drain(run.pk, path)
    assert len(batch.metrics) == 3 and len(batch.checkpoints) == 1
    run.refresh_from_db()
    assert run.state == Run.State.RUNNING
    assert run.trainer_status == "running"
    assert (run.step, run.last_loss, run.last_val_loss, run.tokens_seen) == (2, 2.5, 2.4, 128)
    assert run.events_offset == path.stat().st_size
    assert list(Metric.objects.filter(run=run, kind="metric").values_list("step", "loss")) == [
        (1, 3.0),
        (2, 2.5),
    ]
    assert Metric.objects.get(run=run, kind="eval").val_ppl == 11.0
    assert Checkpoint.objects.get(run=run).path == "checkpoints/step-000002"


def test_the_same_bytes_are_ingested_once_even_by_two_followers(run):
    path = run.run_dir / "events.jsonl"
    append(path, metric_line(1) + metric_line(2))
    read = read_events(path, 0)
    assert events.ingest(run.pk, read) is not None
    # A second follower that read the same bytes finds the offset moved and stores nothing.
    assert events.ingest(run.pk, read) is None
    assert Metric.objects.filter(run=run).count() == 2


def test_a_restarted_follower_replays_from_its_offset_without_duplicates(run):
    path = run.run_dir / "events.jsonl"
    append(path, "".join(metric_line(s) for s in range(1, 6)))
    events.drain(run.pk, path)
    # The trainer goes on while the worker is down; the half-written last line waits.
    append(path, "".join(metric_line(s) for s in range(6, 11)) + metric_line(11)[:15])
    events.drain(run.pk, path)
    steps = list(Metric.objects.filter(run=run).values_list("step", flat=True))
    assert steps == list(range(1, 11))
    append(path, metric_line(11)[15:])
    events.drain(run.pk, path)
    assert Metric.objects.filter(run=run).count() == 11
    run.refresh_from_db()
    assert run.events_offset == path.stat().st_size


def test_a_large_backlog_is_ingested_in_bounded_batches(run):
    path = run.run_dir / "events.jsonl"
    append(path, "".join(metric_line(s) for s in range(1, 301)))
    batch = events.drain(run.pk, path, max_bytes=2048)
    assert len(batch.metrics) == 300
    assert Metric.objects.filter(run=run).count() == 300


def test_checkpoint_paths_outside_the_run_directory_are_refused(run):
    path = run.run_dir / "events.jsonl"
    append(path, event_line("checkpoint", {"path": "../../etc", "bytes": 1}, 3))
    append(path, event_line("checkpoint", {"path": "/etc", "bytes": 1}, 4))
    events.drain(run.pk, path)
    assert not Checkpoint.objects.filter(run=run).exists()


def test_checkpoints_removed_by_retention_are_flagged_deleted(run):
    path = run.run_dir / "events.jsonl"
    for step in (2, 4):
        commit_checkpoint(run.run_dir, step)
        append(path, event_line("checkpoint", {"path": f"checkpoints/step-{step:06d}"}, step))
    events.drain(run.pk, path)
    (run.run_dir / "checkpoints/step-000002/.metadata").unlink()
    commit_checkpoint(run.run_dir, 6)
    append(path, event_line("checkpoint", {"path": "checkpoints/step-000006"}, 6))
    events.drain(run.pk, path)
    flags = dict(Checkpoint.objects.filter(run=run).values_list("step", "deleted"))
    assert flags == {2: True, 4: False, 6: False}


def test_non_finite_values_are_stored_as_missing(run):
    path = run.run_dir / "events.jsonl"
    append(path, '{"v":1,"t":1,"kind":"metric","step":1,"data":{"loss":NaN,"lr":1e-4}}\n')
    events.drain(run.pk, path)
    m = Metric.objects.get(run=run)
    assert m.loss is None and m.lr == 1e-4
