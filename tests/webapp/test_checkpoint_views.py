"""Checkpoint actions: resume, export (+ download), samples, delete, file browsing."""

from __future__ import annotations

import io
import json
import os
import tarfile

import pytest
import redis
from django.conf import settings

from tests.webapp.channel_listener import Listener
from tests.webapp.runpage_helpers import make_checkpoint, make_run
from trainer.checkpoint import list_checkpoints
from webapp.runs.models import Checkpoint, Run, Sample
from worker.checkpoints import delete_checkpoint, move_to_trash
from worker.control import committed_checkpoints, queue_resume

pytestmark = pytest.mark.django_db


@pytest.fixture
def listener():
    with Listener() as listening:
        yield listening


def _url(ckpt: Checkpoint, action: str) -> str:
    return f"/runs/{ckpt.run_id}/checkpoints/{ckpt.pk}/{action}"


def test_files_lists_names_and_sizes(alice_client, alice):
    run = make_run(alice)
    ckpt = make_checkpoint(run, 200)
    (run.run_dir / ckpt.path / "sub").mkdir()
    (run.run_dir / ckpt.path / "sub" / "inner.bin").write_bytes(b"z" * 7)
    data = alice_client.get(_url(ckpt, "files/")).json()
    assert data["path"] == ""
    files = {f["name"]: f for f in data["files"]}
    assert files["__0_0.distcp"]["bytes"] == 300
    assert files["sub"]["kind"] == "dir"
    inner = alice_client.get(_url(ckpt, "files/") + "?path=sub").json()
    assert inner == {"path": "sub", "files": [{"name": "inner.bin", "bytes": 7, "kind": "file"}]}


@pytest.mark.parametrize("path", ["..", "../..", "sub/../../..", "/etc", "../../train.log"])
def test_files_refuses_paths_that_escape(alice_client, alice, path):
    run = make_run(alice)
    ckpt = make_checkpoint(run, 200)
    (run.run_dir / ckpt.path / "sub").mkdir()
    response = alice_client.get(_url(ckpt, "files/"), {"path": path})
    assert response.status_code == 400
    assert response.json()["field"] == "path"


def test_files_refuses_a_symlink_out_of_the_checkpoint_and_lists_it_without_following(
    alice_client, alice, tmp_path
):
    run = make_run(alice)
    ckpt = make_checkpoint(run, 200)
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwords.txt").write_text("hunter2")
    os.symlink(secret, run.run_dir / ckpt.path / "escape")
    assert alice_client.get(_url(ckpt, "files/"), {"path": "escape"}).status_code == 400
    listed = {f["name"]: f for f in alice_client.get(_url(ckpt, "files/")).json()["files"]}
    assert listed["escape"] == {"name": "escape", "bytes": None, "kind": "link"}


def test_it_rejects_other_users_checkpoints(client, alice, bob):
    run = make_run(alice, state=Run.State.STOPPED)
    ckpt = make_checkpoint(run, 200)
    client.force_login(bob)
    assert client.get(_url(ckpt, "files/")).status_code == 404
    for action in ("resume/", "export/", "generate/", "delete/"):
        assert client.post(_url(ckpt, action), {"prompt": "hi"}).status_code == 404, action
    assert Checkpoint.objects.get(pk=ckpt.pk).export_state == ""
    assert not Sample.objects.exists()


def test_delete_refuses_the_latest_checkpoint_of_an_active_run(alice_client, alice):
    run = make_run(alice, state=Run.State.RUNNING)
    old, latest = make_checkpoint(run, 100), make_checkpoint(run, 200)
    response = alice_client.post(_url(latest, "delete/"), follow=True)
    assert "cannot be deleted" in response.content.decode()
    assert (run.run_dir / latest.path).is_dir()
    assert not Checkpoint.objects.get(pk=latest.pk).deleted
    alice_client.post(_url(old, "delete/"))
    assert Checkpoint.objects.get(pk=old.pk).deleted
    assert not (run.run_dir / old.path).exists()


def test_delete_of_a_finished_runs_latest_checkpoint_is_allowed(alice_client, alice):
    run = make_run(alice, state=Run.State.COMPLETED)
    latest = make_checkpoint(run, 200)
    alice_client.post(_url(latest, "delete/"))
    assert Checkpoint.objects.get(pk=latest.pk).deleted
    assert alice_client.get(_url(latest, "files/")).status_code == 404


def test_delete_moves_the_folder_aside_and_leaves_removing_its_files_to_a_cpu_task(
    alice_client, alice, django_capture_on_commit_callbacks
):
    redis.Redis.from_url(settings.REDIS_URL).delete("cpu")  # no stale tasks from earlier runs
    run = make_run(alice, state=Run.State.STOPPED)
    for step in (100, 200):
        make_checkpoint(run, step)
    latest = make_checkpoint(run, 300)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = alice_client.post(_url(latest, "delete/"), follow=True)
    assert "Checkpoint of step 300 deleted." in response.content.decode()
    assert Checkpoint.objects.get(pk=latest.pk).deleted
    # The request only renamed the folder: its shards are still there, out of step-N.
    (trash,) = (run.run_dir / "checkpoints").glob(f".deleting-{latest.pk}-*")
    assert (trash / "__0_0.distcp").read_bytes() == b"x" * 300
    assert not (run.run_dir / latest.path).exists()
    assert len(callbacks) == 1
    (message,) = redis.Redis.from_url(settings.REDIS_URL).lrange("cpu", 0, -1)
    assert json.loads(message)["headers"]["task"] == "worker.delete_checkpoint"
    # Nothing that looks for committed checkpoints sees the folder being removed.
    assert [step for step, _ in list_checkpoints(run.run_dir)] == [100, 200]
    assert [step for step, _ in committed_checkpoints(run)] == [100, 200]
    queue_resume(run, "latest")
    run.refresh_from_db()
    assert run.resume_from == "checkpoints/step-000200"
    redis.Redis.from_url(settings.REDIS_URL).delete("cpu")


def test_the_delete_task_removes_only_that_checkpoints_files_and_may_run_twice(alice, listener):
    run = make_run(alice, state=Run.State.COMPLETED)
    keep, gone = make_checkpoint(run, 100), make_checkpoint(run, 200)
    Checkpoint.objects.filter(pk=gone.pk).update(deleted=True)
    gone.refresh_from_db()
    trash = move_to_trash(run.run_dir, gone)
    other = run.run_dir / "checkpoints" / f".deleting-{keep.pk}-0000"  # another row's
    other.mkdir()
    listener.join(run.pk)
    assert delete_checkpoint(gone.pk) == 1
    assert not trash.exists() and other.is_dir()
    assert (run.run_dir / keep.path / ".metadata").is_file()
    (row,) = listener.receive()["payload"]["checkpoints"]
    assert (row["id"], row["deleted"]) == (gone.pk, True)  # the run page drops the row
    assert delete_checkpoint(gone.pk) == 0  # a redelivery finds nothing left to remove


def test_the_delete_task_never_follows_a_planted_symlink(alice, tmp_path):
    run = make_run(alice, state=Run.State.COMPLETED)
    ckpt = make_checkpoint(run, 100)
    Checkpoint.objects.filter(pk=ckpt.pk).update(deleted=True)
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "data").write_text("keep me")
    (run.run_dir / "checkpoints" / f".deleting-{ckpt.pk}-link").symlink_to(outside)
    assert delete_checkpoint(ckpt.pk) == 0
    assert (outside / "data").read_text() == "keep me"


@pytest.mark.parametrize("path", ["checkpoints", ".", "checkpoints/../../elsewhere", "other/x"])
def test_delete_refuses_a_row_whose_path_is_no_checkpoint_folder_of_the_run(
    alice_client, alice, path, django_capture_on_commit_callbacks
):
    run = make_run(alice, state=Run.State.COMPLETED)
    make_checkpoint(run, 100)
    ckpt = make_checkpoint(run, 200)
    Checkpoint.objects.filter(pk=ckpt.pk).update(path=path)
    (run.run_dir / "other/x").mkdir(parents=True)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = alice_client.post(_url(ckpt, "delete/"), follow=True)
    assert "not a folder of this run; not deleted" in response.content.decode()
    assert not Checkpoint.objects.get(pk=ckpt.pk).deleted and not callbacks
    assert (run.run_dir / "checkpoints/step-000100/.metadata").is_file()
    assert (run.run_dir / "other/x").is_dir()


def test_export_queues_once_and_sends_the_task(
    alice_client, alice, django_capture_on_commit_callbacks
):
    run = make_run(alice, state=Run.State.COMPLETED)
    ckpt = make_checkpoint(run, 200)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        alice_client.post(_url(ckpt, "export/"))
        again = alice_client.post(_url(ckpt, "export/"), follow=True)
    assert Checkpoint.objects.get(pk=ckpt.pk).export_state == "queued"
    assert len(callbacks) == 1  # the second click queued nothing
    assert "already queued" in again.content.decode()


def test_export_download_streams_a_tar_of_the_export_folder(alice_client, alice):
    run = make_run(alice, state=Run.State.COMPLETED)
    ckpt = make_checkpoint(run, 200)
    export = run.run_dir / "export" / "step-000200"
    export.mkdir(parents=True)
    (export / "config.json").write_text('{"model_type": "llama"}')
    (export / "model.safetensors").write_bytes(os.urandom(3000))
    assert alice_client.get(_url(ckpt, "export.tar")).status_code == 404  # not exported yet
    Checkpoint.objects.filter(pk=ckpt.pk).update(
        export_state="done", export_path="export/step-000200"
    )
    response = alice_client.get(_url(ckpt, "export.tar"))
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        names = sorted(archive.getnames())
        member = archive.extractfile(f"run{run.pk}-step000200/model.safetensors").read()
    prefix = f"run{run.pk}-step000200"
    assert names == [f"{prefix}/config.json", f"{prefix}/model.safetensors"]
    assert member == (export / "model.safetensors").read_bytes()


def test_export_download_refuses_an_export_path_outside_the_run(alice_client, alice, tmp_path):
    run = make_run(alice, state=Run.State.COMPLETED)
    ckpt = make_checkpoint(run, 200)
    Checkpoint.objects.filter(pk=ckpt.pk).update(export_state="done", export_path="../../")
    assert alice_client.get(_url(ckpt, "export.tar")).status_code == 404


def test_generate_creates_a_queued_sample_with_validated_parameters(
    alice_client, alice, django_capture_on_commit_callbacks
):
    run = make_run(alice)
    ckpt = make_checkpoint(run, 200)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        alice_client.post(
            _url(ckpt, "generate/"),
            {"prompt": "The json module", "max_new_tokens": "16", "temperature": "0"},
        )
    sample = Sample.objects.get()
    assert (sample.checkpoint_id, sample.prompt, sample.state) == (
        ckpt.pk,
        "The json module",
        "queued",
    )
    assert sample.params == {"max_new_tokens": 16, "temperature": 0.0, "top_p": 0.95}
    assert len(callbacks) == 1
    data = alice_client.get(f"/api/runs/{run.pk}/samples").json()
    assert [s["id"] for s in data["samples"]] == [sample.pk]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"prompt": "  "}, "prompt: enter some text"),
        ({"prompt": "x" * 5000}, "prompt: at most"),
        ({"prompt": "hi", "temperature": "hot"}, "temperature: &#x27;hot&#x27; is not a number"),
        ({"prompt": "hi", "max_new_tokens": "100000"}, "max_new_tokens: must be between"),
        ({"prompt": "hi", "top_p": "nan"}, "top_p: must be between"),
    ],
)
def test_generate_rejects_bad_input_naming_the_field(alice_client, alice, form, message):
    run = make_run(alice)
    ckpt = make_checkpoint(run, 200)
    response = alice_client.post(_url(ckpt, "generate/"), form, follow=True)
    assert message in response.content.decode()
    assert not Sample.objects.exists()


def test_resume_refuses_an_active_run(alice_client, alice):
    run = make_run(alice, state=Run.State.RUNNING)
    ckpt = make_checkpoint(run, 200)
    response = alice_client.post(_url(ckpt, "resume/"), follow=True)
    assert "Cannot resume" in response.content.decode()
    run.refresh_from_db()
    assert run.resume_from == "" and run.state == Run.State.RUNNING


def test_resume_queues_a_new_attempt_from_that_checkpoint(
    alice_client, alice, django_capture_on_commit_callbacks
):
    run = make_run(alice, state=Run.State.STOPPED, attempt=1)
    make_checkpoint(run, 100)
    ckpt = make_checkpoint(run, 200)
    with django_capture_on_commit_callbacks(execute=False):
        response = alice_client.post(_url(ckpt, "resume/"), follow=True)
    assert "Resuming from step 200" in response.content.decode()
    run.refresh_from_db()
    assert (run.state, run.resume_from) == (Run.State.QUEUED, "checkpoints/step-000200")


def test_resume_validates_total_steps(alice_client, alice):
    run = make_run(alice, state=Run.State.STOPPED)
    ckpt = make_checkpoint(run, 200)
    response = alice_client.post(_url(ckpt, "resume/"), {"total_steps": "150"}, follow=True)
    assert "total_steps: a whole number above 200" in response.content.decode()
    run.refresh_from_db()
    assert run.state == Run.State.STOPPED


def test_export_and_sample_errors_reach_page_and_api_without_server_paths(alice_client, alice):
    # Rows written before errors were scrubbed (or by any other path) still hold paths.
    run = make_run(alice, state=Run.State.COMPLETED)
    ckpt = make_checkpoint(run, 200)
    ckpt_dir = run.run_dir / ckpt.path
    Checkpoint.objects.filter(pk=ckpt.pk).update(
        export_state="failed", export_error=f"checkpoint: {ckpt_dir} is not a DCP checkpoint"
    )
    Sample.objects.create(
        run=run, checkpoint=ckpt, prompt="p", state="failed", error=f"no model in {ckpt_dir}/x"
    )
    api = alice_client.get(f"/api/runs/{run.pk}/checkpoints/").json()
    samples = alice_client.get(f"/api/runs/{run.pk}/samples").json()
    page = alice_client.get(f"/runs/{run.pk}/").content.decode()
    expected = "checkpoint: checkpoints/step-000200 is not a DCP checkpoint"
    assert api["checkpoints"][0]["export_error"] == expected
    assert samples["samples"][0]["error"] == "no model in checkpoints/step-000200/x"
    assert expected in page
    for shown in (str(api), str(samples), page):
        assert str(run.run_dir) not in shown
