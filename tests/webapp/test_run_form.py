"""The new-run form: generated from TrainConfig, validated by the trainer, launching a run."""

from __future__ import annotations

import pytest
import redis
import yaml
from django.conf import settings

from tests.webapp.web_factories import make_dataset, make_model, make_run
from trainer.config import TrainConfig, parse_config
from webapp.basemodels.models import BaseModel
from webapp.runs.config_form import schema_fields
from webapp.runs.models import Run, RunDataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def choices(alice):
    return make_model(alice), make_dataset(alice, "domain"), make_dataset(alice, "replay")


@pytest.fixture
def gpu_queue():
    """The real Redis queue the run task goes to; emptied so no stale task outlives the test."""
    r = redis.Redis.from_url(settings.REDIS_URL)
    r.delete("gpu")
    yield r
    r.delete("gpu")


def post_form(client, model, datasets, **values):
    data = {"base_model": model.pk, "datasets": [d.pk for d in datasets]}
    page = client.get("/runs/new/")
    # Submit every field with the value the page rendered (its defaults), like a browser.
    for sf in schema_fields():
        initial = page.context["form"][sf.name].value()
        if isinstance(initial, bool):
            if initial:
                data[sf.name] = "on"
        elif initial is not None:
            data[sf.name] = initial
    data.update(values)
    return client.post("/runs/new/", {k: v for k, v in data.items() if v is not None})


def test_the_form_has_every_schema_field_grouped_with_defaults_and_help(alice_client, choices):
    response = alice_client.get("/runs/new/")
    assert response.status_code == 200
    body = response.content.decode()
    for legend in ("Run", "Model", "Data", "Optimization", "Schedule", "Parallelism",
                   "Checkpoints", "Evaluation"):  # fmt: skip
        assert f"<legend>{legend}</legend>" in body
    form = response.context["form"]
    assert form["optim__lr"].value() == 3e-5
    assert form["schedule__kind"].field.choices == [
        (k, k) for k in ("cosine", "linear", "constant", "wsd")
    ]
    assert form["checkpoint__keep_best"].value() is True
    assert form["parallel__nproc_per_node"].label == "Number of GPUs"
    assert "Peak learning rate." in body
    assert 'name="optim__lr"' in body and 'min="8"' in body  # seq_len's bound from the schema
    assert "domain" in body and "replay" in body


def test_the_defaults_launch_a_queued_run_and_go_to_its_page(
    alice_client, alice, choices, gpu_queue, django_capture_on_commit_callbacks
):
    model, domain, replay = choices
    with django_capture_on_commit_callbacks(execute=True):
        response = post_form(
            alice_client, model, [domain, replay], **{f"weight_{replay.pk}": "0.25"}
        )
    run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/runs/{run.pk}/"
    assert run.owner == alice and run.state == "queued" and run.base_model == model
    expected = parse_config(
        {
            "model": {"path": model.path},
            "data": {
                "corpora": [
                    {"path": f"dataset://{domain.pk}", "weight": 1.0, "name": "domain"},
                    {"path": f"dataset://{replay.pk}", "weight": 0.25, "name": "replay"},
                ]
            },
        }
    )
    assert run.config == expected.model_dump(mode="json")
    assert run.total_steps == 1000
    weights = dict(RunDataset.objects.filter(run=run).values_list("dataset_id", "weight"))
    assert weights == {domain.pk: 1.0, replay.pk: 0.25}
    assert gpu_queue.llen("gpu") == 1  # the training task reached the real broker


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("optim__lr", "5", "less than or equal to 1"),
        ("data__seq_len", "4", "greater than or equal to 8"),
        ("checkpoint__keep", "1", "greater than or equal to 2"),
        ("schedule__warmup_steps", "5000", "must not exceed schedule.total_steps"),
        ("parallel__nproc_per_node", "0", "greater than or equal to 1"),
        ("data__micro_batch_size", "abc", "Enter a whole number"),
    ],
)
def test_bad_values_are_refused_with_the_error_next_to_their_field(
    alice_client, choices, field, value, message
):
    model, domain, _ = choices
    response = post_form(alice_client, model, [domain], **{field: value})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == [field]
    assert message in errors[field][0]
    assert f'id="error-{field}"' in response.content.decode()
    assert not Run.objects.exists()


def test_steps_and_tokens_both_empty_is_an_error_on_total_steps(alice_client, choices):
    model, domain, _ = choices
    response = post_form(alice_client, model, [domain], schedule__total_steps="")
    assert (
        "set total_steps or total_tokens"
        in response.context["form"].errors["schedule__total_steps"][0]
    )


def test_a_bad_weight_is_shown_on_that_datasets_weight(alice_client, choices):
    model, domain, replay = choices
    response = post_form(alice_client, model, [domain, replay], **{f"weight_{replay.pk}": "0"})
    errors = response.context["form"].errors
    assert list(errors) == [f"weight_{replay.pk}"]
    assert "greater than 0" in errors[f"weight_{replay.pk}"][0]


def test_a_run_needs_a_base_model_and_a_dataset(alice_client, choices):
    model, _, _ = choices
    response = post_form(alice_client, model, [], base_model="")
    errors = response.context["form"].errors
    assert set(errors) == {"base_model", "datasets"}


def test_datasets_that_are_not_ready_are_not_offered(alice_client, alice, choices):
    model, _, _ = choices
    pending = make_dataset(alice, "pending", state="validating")
    response = post_form(alice_client, model, [pending])
    assert "datasets" in response.context["form"].errors
    assert "pending" not in response.content.decode()


def test_launch_checks_the_models_folder_against_base_model_roots_again(
    alice_client, alice, settings, tmp_path
):
    models = tmp_path / "models"
    (models / "tiny").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (models / "sneaky").symlink_to(tmp_path / "elsewhere")  # inside by name only
    inside = make_model(alice, "inside", path=str(models / "tiny"))
    sneaky = make_model(alice, "sneaky", path=str(models / "sneaky"))
    hub = make_model(alice, "hub", path=str(tmp_path / "hf-cache" / "snapshot"))
    BaseModel.objects.filter(pk=hub.pk).update(source="org/tiny")  # a hub id: not a folder
    data = make_dataset(alice, "domain")
    settings.BASE_MODEL_ROOTS = [str(models)]

    refused = post_form(alice_client, sneaky, [data])
    assert set(refused.context["form"].errors) == {"base_model"}
    assert "local models must be under" in refused.context["form"].errors["base_model"][0]
    assert post_form(alice_client, inside, [data]).status_code == 302
    assert post_form(alice_client, hub, [data]).status_code == 302  # never held to the roots

    settings.BASE_MODEL_ROOTS = [str(tmp_path / "narrower")]  # narrowed after registration
    response = post_form(alice_client, inside, [data])
    assert set(response.context["form"].errors) == {"base_model"}
    assert str(tmp_path / "narrower") in response.context["form"].errors["base_model"][0]
    assert Run.objects.count() == 2

    settings.BASE_MODEL_ROOTS = []  # empty: any folder, as at registration
    assert post_form(alice_client, sneaky, [data]).status_code == 302


def test_another_users_model_and_dataset_cannot_be_chosen(alice_client, bob, choices):
    model, domain, _ = choices
    response = post_form(alice_client, make_model(bob, "bobs"), [make_dataset(bob, "bobs-data")])
    assert set(response.context["form"].errors) == {"base_model", "datasets"}
    assert not Run.objects.exists()


def test_yaml_export_and_import_round_trip(alice_client, alice, choices, gpu_queue):
    model, domain, replay = choices
    post_form(
        alice_client, model, [domain, replay], name="first", optim__lr="0.0002",
        schedule__kind="wsd", checkpoint__keep_best="", **{f"weight_{domain.pk}": "3"},
    )  # fmt: skip
    run = Run.objects.get()
    exported = alice_client.get(f"/runs/{run.pk}/config.yaml")
    assert exported["Content-Disposition"] == f'attachment; filename="run-{run.pk}.yaml"'
    data = yaml.safe_load(exported.content)
    assert data == run.config
    assert TrainConfig.model_validate(data).optim.lr == 0.0002

    imported = alice_client.post("/runs/import/", {"config_yaml": exported.content.decode()})
    assert imported.status_code == 200
    form = imported.context["form"]
    assert form["optim__lr"].value() == 0.0002
    assert form["schedule__kind"].value() == "wsd"
    assert form["checkpoint__keep_best"].value() is False
    assert form["base_model"].value() == model.pk
    assert sorted(form["datasets"].value()) == [domain.pk, replay.pk]
    assert form[f"weight_{domain.pk}"].value() == 3.0
    # Launching the imported form unchanged gives the same config.
    values = {sf.name: form[sf.name].value() for sf in schema_fields()}
    values = {
        k: ("on" if v is True else "" if v in (False, None) else v) for k, v in values.items()
    }
    post_form(alice_client, model, [domain, replay], **values, **{f"weight_{domain.pk}": "3"})
    second = Run.objects.exclude(pk=run.pk).get()
    assert second.config == run.config


def test_import_refuses_broken_yaml_and_reports_bad_values(alice_client, choices):
    response = alice_client.post("/runs/import/", {"config_yaml": "a: [unclosed"})
    assert response.status_code == 400
    assert "not valid YAML" in response.content.decode()
    response = alice_client.post("/runs/import/", {"config_yaml": "- just\n- a list\n"})
    assert "must be a mapping" in response.content.decode()
    response = alice_client.post(
        "/runs/import/", {"config_yaml": "optim:\n  lr: 7\nmodel:\n  path: /nowhere\n"}
    )
    assert response.status_code == 200
    warnings = response.context["warnings"]
    assert any(w.startswith("optim.lr:") for w in warnings)
    assert any("not a registered base model" in w for w in warnings)


def test_clone_fills_the_form_with_the_runs_config(alice_client, alice, choices):
    model, domain, _ = choices
    run = make_run(alice, "original", base_model=model, datasets=[domain])
    run.config["optim"] = {"lr": 0.001}
    run.save()
    response = alice_client.get(f"/runs/{run.pk}/clone/")
    form = response.context["form"]
    assert form["name"].value() == "original (copy)"
    assert form["optim__lr"].value() == 0.001
    assert form["base_model"].value() == model.pk
    assert form["datasets"].value() == [domain.pk]


def test_one_submit_shows_a_field_error_and_a_config_error_together(alice_client, choices):
    model, domain, _ = choices
    # "abc" fails the form's own parsing; lr=5 only fails the trainer's TrainConfig.
    response = post_form(alice_client, model, [domain], data__micro_batch_size="abc", optim__lr="5")
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert set(errors) == {"data__micro_batch_size", "optim__lr"}
    assert "Enter a whole number" in errors["data__micro_batch_size"][0]
    assert "less than or equal to 1" in errors["optim__lr"][0]
    body = response.content.decode()
    assert 'id="error-data__micro_batch_size"' in body and 'id="error-optim__lr"' in body
    assert not Run.objects.exists()


def test_a_missing_model_and_dataset_and_a_bad_lr_are_all_reported(alice_client, choices):
    model, domain, replay = choices
    response = post_form(alice_client, model, [], base_model="", optim__lr="5")
    errors = response.context["form"].errors
    assert set(errors) == {"base_model", "datasets", "optim__lr"}
    # The trainer also rejects the empty model.path and corpora: said once, by the form.
    assert len(errors["base_model"]) == 1 and len(errors["datasets"]) == 1


def test_a_cross_field_check_is_not_run_against_a_field_that_did_not_parse(alice_client, choices):
    model, domain, _ = choices
    # total_steps did not parse, so warmup_steps=5000 cannot be judged against it.
    response = post_form(
        alice_client, model, [domain], schedule__total_steps="many", schedule__warmup_steps="5000"
    )
    errors = response.context["form"].errors
    assert list(errors) == ["schedule__total_steps"]
    assert len(errors["schedule__total_steps"]) == 1
