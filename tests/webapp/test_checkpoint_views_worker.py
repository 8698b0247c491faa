"""The worker side of checkpoint actions: the real trainer CLIs export and generate, and a
real Celery worker removes a deleted checkpoint's files."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings

from tests.stack import celery_worker_args, process, wait_for
from tests.trainer.inference_fixtures import write_checkpoint
from tests.webapp.channel_listener import Listener
from tests.webapp.runpage_helpers import make_checkpoint, make_run
from webapp.runs.models import Checkpoint, Run, Sample
from worker.checkpoints import export_checkpoint, generate_sample

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def listener():
    with Listener() as listening:
        yield listening


def test_a_real_worker_removes_a_deleted_checkpoints_files_and_tells_the_page(
    transactional_db, alice_client, alice, listener, tmp_path
):
    redis.Redis.from_url(settings.REDIS_URL).delete("cpu")  # no stale tasks from earlier runs
    run = make_run(alice, state=Run.State.RUNNING)
    old = make_checkpoint(run, 100, files={".metadata": b"m", "__0_0.distcp": b"x" * 4096})
    make_checkpoint(run, 200)
    listener.join(run.pk)
    checkpoints = run.run_dir / "checkpoints"
    with process(celery_worker_args("ckpt", queues="cpu", concurrency=1), tmp_path / "w.log"):
        response = alice_client.post(f"/runs/{run.pk}/checkpoints/{old.pk}/delete/", follow=True)
        assert "Checkpoint of step 100 deleted." in response.content.decode()
        shown = [c["step"] for c in response.context["page_data"]["checkpoints"]]
        assert shown == [200]  # gone from the page before its files are
        wait_for(
            lambda: not list(checkpoints.glob(".deleting-*")),
            timeout=90,
            what="the worker to remove the checkpoint's files",
        )
        update = listener.receive()
    log = (tmp_path / "w.log").read_text()
    assert "worker.delete_checkpoint" in log, log
    (row,) = update["payload"]["checkpoints"]
    assert (row["id"], row["deleted"]) == (old.pk, True)
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-000200"]


def test_export_and_sample_run_the_trainer_clis_and_record_the_outcome(alice, tiny_model_dir):
    run = make_run(alice, state=Run.State.COMPLETED)
    write_checkpoint(run.run_dir, tiny_model_dir, step=5)
    ckpt = Checkpoint.objects.create(
        run=run, step=5, path="checkpoints/step-000005", export_state="queued"
    )

    assert export_checkpoint(ckpt.pk) is True
    ckpt.refresh_from_db()
    assert (ckpt.export_state, ckpt.export_error) == ("done", "")
    assert ckpt.export_path == "export/step-000005"
    assert (run.run_dir / "export/step-000005/config.json").is_file()
    assert export_checkpoint(ckpt.pk) is False  # no longer queued: a redelivery does nothing

    sample = Sample.objects.create(
        run=run,
        checkpoint=ckpt,
        prompt="The json module",
        params={"max_new_tokens": 8, "temperature": 0.0, "seed": 1},
    )
    assert generate_sample(sample.pk) is True
    sample.refresh_from_db()
    assert (sample.state, sample.error) == ("done", "")
    assert isinstance(sample.output, str)
    assert generate_sample(sample.pk) is False  # done: a redelivery does nothing


def _broken_checkpoint(run: Run) -> Checkpoint:
    """A checkpoint row queued for export whose folder was never committed (no .metadata)."""
    folder = run.run_dir / "checkpoints/step-000007"
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text("{}")
    return Checkpoint.objects.create(
        run=run, step=7, path="checkpoints/step-000007", export_state="queued"
    )


def test_a_broken_checkpoint_fails_the_export_with_the_trainers_message(alice):
    run = make_run(alice, state=Run.State.COMPLETED)
    ckpt = _broken_checkpoint(run)
    export_checkpoint(ckpt.pk)
    ckpt.refresh_from_db()
    assert ckpt.export_state == "failed"
    assert "no .metadata" in ckpt.export_error


def test_a_failed_export_and_sample_show_why_on_page_and_api_without_server_paths(
    alice, alice_client, settings
):
    run = make_run(alice, state=Run.State.COMPLETED)
    ckpt = _broken_checkpoint(run)
    sample = Sample.objects.create(run=run, checkpoint=ckpt, prompt="x", params={})

    export_checkpoint(ckpt.pk)
    generate_sample(sample.pk)

    ckpt.refresh_from_db()
    sample.refresh_from_db()
    # The trainer's own message, its path made relative to the run directory.
    why = "checkpoints/step-000007 is not a complete checkpoint: no .metadata"
    assert ckpt.export_error.startswith(f"trainer.export: {why}"), ckpt.export_error
    assert sample.error.startswith(f"trainer.generate: {why}"), sample.error
    api = alice_client.get(f"/api/runs/{run.pk}/checkpoints/").content.decode()
    samples = alice_client.get(f"/api/runs/{run.pk}/samples").content.decode()
    page = alice_client.get(f"/runs/{run.pk}/").content.decode()
    assert why in api and why in samples and why in page
    for shown in (api, samples, page):
        assert str(settings.RUNS_ROOT) not in shown and str(run.run_dir) not in shown
