"""Another user's run, dataset and model are a 404 on every view and endpoint; staff see all."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tests.webapp.web_factories import make_run
from webapp.datasets.models import Dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def alices_things(alice):
    run = make_run(alice, "alices-run", state="completed")
    dataset = run.datasets.get()
    uploading = Dataset.objects.create(
        owner=alice, name="up", filename="up.jsonl", size_bytes=10, sha256=""
    )
    uploading.storage_dir.mkdir(parents=True)
    uploading.partial_path.touch()
    return {"run": run, "dataset": dataset, "uploading": uploading, "model": run.base_model}


def reads(t):
    """(path) of every GET view and endpoint that takes one of alice's ids."""
    r, d, u, m = t["run"].pk, t["dataset"].pk, t["uploading"].pk, t["model"].pk
    return [
        f"/runs/{r}/clone/",
        f"/runs/{r}/config.yaml",
        f"/api/runs/{r}/",
        f"/api/runs/{r}/checkpoints/",
        f"/datasets/{d}/",
        f"/datasets/{d}/status/",
        f"/datasets/{u}/status/",
        f"/models/{m}/",
    ]


def writes(t):
    """(path, body, content type) of every unsafe endpoint that takes one of alice's ids."""
    d, u, m = t["dataset"].pk, t["uploading"].pk, t["model"].pk
    return [
        (f"/datasets/{d}/delete/", "", "application/x-www-form-urlencoded"),
        (f"/models/{m}/delete/", "", "application/x-www-form-urlencoded"),
        (f"/datasets/{u}/chunk/?offset=0", "0123456789", "application/octet-stream"),
        (f"/datasets/{u}/complete/", json.dumps({"sha256": "0" * 64}), "application/json"),
    ]


def test_another_user_gets_404_on_every_view_and_endpoint(client, bob, alices_things):
    client.force_login(bob)
    for path in reads(alices_things):
        assert client.get(path).status_code == 404, path
    for path, body, ctype in writes(alices_things):
        assert client.post(path, body, content_type=ctype).status_code == 404, path
    assert client.put(
        f"/datasets/{alices_things['uploading'].pk}/chunk/?offset=0", "x",
        content_type="application/octet-stream",
    ).status_code == 404  # fmt: skip
    # Nothing changed, and the lists do not show alice's objects.
    assert Dataset.objects.filter(pk=alices_things["dataset"].pk).exists()
    assert alices_things["uploading"].partial_path.stat().st_size == 0
    assert client.get("/api/runs/").json()["count"] == 0
    for page in ("/", "/datasets/", "/models/"):
        body = client.get(page).content.decode()
        assert (
            "alices-run" not in body and "d-alices-run" not in body and "m-alices-run" not in body
        )


def test_another_users_ids_in_the_run_form_are_not_accepted(client, bob, alices_things):
    client.force_login(bob)
    response = client.post(
        "/runs/new/",
        {"base_model": alices_things["model"].pk, "datasets": [alices_things["dataset"].pk]},
    )
    assert response.status_code == 400
    assert {"base_model", "datasets"} <= set(response.context["form"].errors)


def test_staff_see_and_open_everyones_objects(client, staff, alices_things):
    client.force_login(staff)
    for path in reads(alices_things):
        assert client.get(path).status_code == 200, path
    assert client.get("/api/runs/").json()["count"] == 1


def test_the_owner_opens_every_view(alice_client, alices_things):
    for path in reads(alices_things):
        assert alice_client.get(path).status_code == 200, path


@pytest.mark.parametrize(
    "path", ["/runs/new/", "/datasets/", "/models/", "/runs/1/clone/", "/runs/1/config.yaml"]
)
def test_anonymous_users_are_sent_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.parametrize("path", ["/api/runs/", "/api/runs/1/", "/api/runs/1/checkpoints/"])
def test_anonymous_api_calls_get_401(client, path):
    assert client.get(path).status_code == 401


def test_forms_need_the_csrf_token(alice, alices_things):
    c = Client(enforce_csrf_checks=True)
    c.force_login(alice)
    d = alices_things["dataset"]
    for path, data in [
        ("/runs/new/", {}),
        ("/runs/import/", {"config_yaml": "name: x"}),
        ("/models/", {"source": "/tmp"}),
        (f"/datasets/{d.pk}/delete/", {}),
        (f"/datasets/{alices_things['uploading'].pk}/complete/", {}),
    ]:
        assert c.post(path, data).status_code == 403, path
    assert Dataset.objects.filter(pk=d.pk).exists()
