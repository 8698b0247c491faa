"""The JSON API: run list, run detail, checkpoints, and launching a run, with CSRF."""

from __future__ import annotations

import json

import pytest
import redis
from django.conf import settings
from django.test import Client

from tests.webapp.web_factories import make_dataset, make_model, make_run, run_config
from webapp.runs.models import Checkpoint, Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def csrf_client(alice):
    c = Client(enforce_csrf_checks=True)
    c.force_login(alice)
    c.get("/")  # sets the csrftoken cookie
    return c


@pytest.fixture(autouse=True)
def _empty_gpu_queue():
    r = redis.Redis.from_url(settings.REDIS_URL)
    r.delete("gpu")
    yield
    r.delete("gpu")


def test_the_run_list_api_pages_and_filters(alice_client, alice):
    make_run(alice, "a", state="running", step=5, total_steps=10, last_loss=1.5)
    make_run(alice, "b", state="failed")
    data = alice_client.get("/api/runs/").json()
    assert data["count"] == 2 and data["pages"] == 1
    assert {r["name"] for r in data["results"]} == {"a", "b"}
    only = alice_client.get("/api/runs/?state=running").json()["results"]
    assert [(r["name"], r["step"], r["total_steps"], r["last_loss"]) for r in only] == [
        ("a", 5, 10, 1.5)
    ]


def test_run_detail_has_config_datasets_and_links(alice_client, alice):
    run = make_run(alice, "a")
    data = alice_client.get(f"/api/runs/{run.pk}/").json()
    assert data["id"] == run.pk and data["config"] == run.config
    assert data["datasets"][0]["weight"] == 1.0
    assert data["config_yaml_url"] == f"/runs/{run.pk}/config.yaml"


def test_checkpoints_lists_the_kept_ones_in_step_order(alice_client, alice):
    run = make_run(alice, "a")
    for step, deleted in [(200, False), (100, False), (50, True)]:
        Checkpoint.objects.create(
            run=run, step=step, path=f"checkpoints/step-{step:06d}", loss=2.0, deleted=deleted
        )
    data = alice_client.get(f"/api/runs/{run.pk}/checkpoints/").json()
    assert [c["step"] for c in data["checkpoints"]] == [100, 200]
    assert data["checkpoints"][0]["path"] == "checkpoints/step-000100"


def test_posting_a_config_launches_a_run(csrf_client, alice, django_capture_on_commit_callbacks):
    model, data = make_model(alice), make_dataset(alice)
    config = run_config(model, [data], name="from-script", optim={"lr": 1e-4})
    with django_capture_on_commit_callbacks(execute=True):
        response = csrf_client.post(
            "/api/runs/",
            json.dumps({"config": config}),
            content_type="application/json",
            headers={"X-CSRFToken": csrf_client.cookies["csrftoken"].value},
        )
    assert response.status_code == 201, response.content
    run = Run.objects.get(pk=response.json()["id"])
    assert run.name == "from-script" and run.config["optim"]["lr"] == 1e-4
    assert run.base_model == model and list(run.datasets.all()) == [data]


def test_posting_without_the_csrf_token_is_refused(csrf_client, alice):
    config = run_config(make_model(alice), [make_dataset(alice)])
    response = csrf_client.post(
        "/api/runs/", json.dumps({"config": config}), content_type="application/json"
    )
    assert response.status_code == 403
    assert not Run.objects.exists()


def test_a_bad_config_answers_the_trainers_field_errors(alice_client, alice):
    config = run_config(make_model(alice), [make_dataset(alice)], optim={"lr": 9}, extra_key=1)
    response = alice_client.post(
        "/api/runs/", json.dumps({"config": config}), content_type="application/json"
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert "optim.lr" in errors and "extra_key" in errors


def test_a_config_naming_another_users_dataset_is_refused(alice_client, alice, bob):
    config = run_config(make_model(alice), [make_dataset(bob)])
    response = alice_client.post(
        "/api/runs/", json.dumps({"config": config}), content_type="application/json"
    )
    assert response.status_code == 400
    assert "not one of your ready datasets" in json.dumps(response.json())


def test_unsupported_methods_and_bad_json_get_json_errors(alice_client, alice):
    run = make_run(alice, "a")
    assert alice_client.delete(f"/api/runs/{run.pk}/").status_code == 405
    response = alice_client.post("/api/runs/", "{nope", content_type="application/json")
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]


def post_json(client, body):
    return client.post(
        "/api/runs/",
        json.dumps(body),
        content_type="application/json",
        headers={"X-CSRFToken": client.cookies["csrftoken"].value},
    )


def test_a_base_model_id_launches_a_run_with_that_models_path(
    csrf_client, alice, django_capture_on_commit_callbacks
):
    make_model(alice, "other", path="/models/alice/same-dir")
    model = make_model(alice, "chosen", path="/models/alice/same-dir")  # same dir, own row
    data = make_dataset(alice)
    config = run_config(model, [data], name="by-id")
    del config["model"]
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(csrf_client, {"base_model": model.pk, "config": config})
    assert response.status_code == 201, response.content
    run = Run.objects.get(pk=response.json()["id"])
    assert run.state == "queued" and run.base_model == model
    assert run.config["model"]["path"] == "/models/alice/same-dir"
    assert redis.Redis.from_url(settings.REDIS_URL).llen("gpu") == 1


def test_a_base_model_id_next_to_its_own_path_or_other_model_settings_is_accepted(
    csrf_client, alice
):
    model, data = make_model(alice), make_dataset(alice)
    config = run_config(model, [data])
    config["model"]["precision"] = "fp32"
    response = post_json(csrf_client, {"base_model": model.pk, "config": config})
    assert response.status_code == 201, response.content
    run = Run.objects.get()
    assert run.config["model"]["path"] == model.path
    assert run.config["model"]["precision"] == "fp32"


def test_another_users_base_model_id_is_a_field_error(csrf_client, alice, bob):
    config = run_config(make_model(alice), [make_dataset(alice)])
    del config["model"]
    response = post_json(csrf_client, {"base_model": make_model(bob).pk, "config": config})
    assert response.status_code == 400
    assert response.json()["field"] == "base_model"
    assert "that you can use" in response.json()["errors"]["base_model"]
    assert not Run.objects.exists()


def test_a_base_model_id_with_a_different_path_or_a_non_integer_id_is_refused(csrf_client, alice):
    model, data = make_model(alice), make_dataset(alice)
    config = run_config(model, [data])
    config["model"]["path"] = "/etc"
    response = post_json(csrf_client, {"base_model": model.pk, "config": config})
    assert response.status_code == 400 and "model.path" in response.json()["errors"]
    config = run_config(model, [data])
    response = post_json(csrf_client, {"base_model": str(model.pk), "config": config})
    assert response.status_code == 400 and response.json()["field"] == "base_model"
    assert not Run.objects.exists()


def test_a_model_outside_base_model_roots_is_a_field_error_at_launch(
    csrf_client, alice, settings, tmp_path
):
    model, data = make_model(alice, path=str(tmp_path / "models" / "tiny")), make_dataset(alice)
    config = run_config(model, [data])
    del config["model"]
    settings.BASE_MODEL_ROOTS = [str(tmp_path / "other-models")]  # narrowed since registration
    response = post_json(csrf_client, {"base_model": model.pk, "config": config})
    assert response.status_code == 400, response.content
    assert "local models must be under" in response.json()["errors"]["base_model"]
    assert not Run.objects.exists()
    settings.BASE_MODEL_ROOTS = [str(tmp_path / "models")]
    response = post_json(csrf_client, {"base_model": model.pk, "config": config})
    assert response.status_code == 201, response.content


def test_a_path_that_is_no_registered_model_is_still_refused(csrf_client, alice):
    config = run_config(make_model(alice), [make_dataset(alice)])
    config["model"]["path"] = "/etc"
    response = post_json(csrf_client, {"config": config})
    assert response.status_code == 400
    assert "not a registered base model" in json.dumps(response.json())
    assert not Run.objects.exists()
