"""The JSON API for scripts and charts: runs, one run, its checkpoints, and launching.

Same permissions as the pages (own objects, staff all; another user's run is a 404),
session auth, CSRF on POST. ``POST /api/runs/`` takes ``{"config": {...}}`` and,
optionally, ``"base_model": <id>`` of a registered base model the user may use, whose path
the server writes into ``config.model.path``; a path the client sends itself must name a
registered model it may use (registration checks ``BASE_MODEL_ROOTS``, and ``RunForm``
checks a local model's folder against them again at launch). Metrics after a step and the
log live on the run page's endpoints (``/api/runs/<id>/metrics``, ``/api/runs/<id>/log``).
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from trainer.config import ConfigError, parse_config
from webapp.accounts.permissions import get_visible_or_404, visible_to
from webapp.basemodels.models import BaseModel
from webapp.jsonapi import BadRequest, json_body, json_view
from webapp.runs import listing
from webapp.runs.config_form import default_of, schema_fields
from webapp.runs.forms import RunForm, initial_for_config
from webapp.runs.launch import LaunchError, launch_run
from webapp.runs.models import Run
from webapp.runs.serializers import checkpoint_dict


def _run(request: HttpRequest, pk: int) -> Run:
    return get_visible_or_404(request.user, Run.objects.select_related("owner"), pk=pk)


@json_view("GET", "POST")
def runs(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _create(request)
    qs = listing.filter_runs(
        visible_to(request.user, Run.objects.select_related("owner")), request.GET.get("state")
    )
    page = Paginator(qs, listing.PAGE_SIZE).get_page(request.GET.get("page"))
    now = timezone.now()
    return JsonResponse(
        {
            "count": page.paginator.count,
            "page": page.number,
            "pages": page.paginator.num_pages,
            "results": [listing.list_row(r, now) for r in page.object_list],
        }
    )


def _field_error(field: str, message: str) -> BadRequest:
    return BadRequest(f"{field}: {message}", field=field, errors={field: message})


def _with_base_model(user, body: dict[str, Any], config: dict[str, Any]) -> BaseModel | None:
    """The registered base model ``body["base_model"]`` names, with its path written into
    ``config["model"]["path"]`` (server-side: the client never has to know it); None when
    the body names none. Visibility is the form's: own models, staff all."""
    ref = body.get("base_model")
    if ref is None:
        return None
    if isinstance(ref, bool) or not isinstance(ref, int):
        raise _field_error("base_model", "must be the id (an integer) of a registered base model")
    model = visible_to(user, BaseModel.objects.all()).filter(pk=ref).first()
    if model is None:
        # Same answer for a missing id and another user's model: existence is not confirmed.
        raise _field_error("base_model", f"no base model with id {ref} that you can use")
    section = config.setdefault("model", {})
    if not isinstance(section, dict):
        raise _field_error("model", "must be an object")
    given = section.get("path")
    if given is not None and given not in (model.path, model.source):
        raise _field_error("model.path", f"does not match base model {ref}; leave it out")
    section["path"] = model.path
    return model


def _form_data(user, config: dict[str, Any], base_model: BaseModel | None) -> dict[str, Any]:
    """RunForm data from a config dict, so the API runs the same checks as the page."""
    initial, warnings = initial_for_config(user, config)
    if warnings:
        raise BadRequest("config refers to objects you cannot use", errors={"__root__": warnings})
    if base_model is not None:
        # Two registrations may share a path: the id the client named is the one to use.
        initial["base_model"] = base_model.pk
    values = {sf.name: default_of(sf.info) for sf in schema_fields()} | initial
    data: dict[str, Any] = {}
    for name, value in values.items():
        if value is None or value is False:
            continue  # an empty field is None; an absent checkbox is False
        data[name] = "on" if value is True else value
    return data


def _create(request: HttpRequest) -> HttpResponse:
    body = json_body(request)
    config = body.get("config")
    if not isinstance(config, dict):
        raise BadRequest("config: must be an object (a TrainConfig)", field="config")
    base_model = _with_base_model(request.user, body, config)
    try:
        parse_config(config)  # unknown keys and bad values, named like the trainer names them
    except ConfigError as exc:
        raise BadRequest("invalid config", errors=exc.errors) from None
    form = RunForm(request.user, data=_form_data(request.user, config, base_model))
    if not form.is_valid():
        errors = {name: " ".join(str(e) for e in errs) for name, errs in form.errors.items()}
        raise BadRequest("invalid config", errors=errors)
    assert form.config is not None
    try:
        run = launch_run(
            request.user, form.config, form.cleaned_data["base_model"], form.selected_datasets()
        )
    except LaunchError as exc:
        raise BadRequest(str(exc), status=409) from None
    return JsonResponse(_detail(run), status=201)


def _detail(run: Run) -> dict[str, Any]:
    datasets = [
        {"id": rd.dataset_id, "name": rd.dataset.name, "weight": rd.weight}
        for rd in run.rundataset_set.select_related("dataset").order_by("dataset_id")
    ]
    return {
        **listing.list_row(run),
        "config": run.config,
        "base_model": run.base_model_id,
        "datasets": datasets,
        "config_yaml_url": f"/runs/{run.pk}/config.yaml",
    }


@json_view("GET")
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return JsonResponse(_detail(_run(request, pk)))


@json_view("GET")
def checkpoints(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run(request, pk)
    rows = run.checkpoints.filter(deleted=False).order_by("step")
    return JsonResponse({"run": run.pk, "checkpoints": [checkpoint_dict(c) for c in rows]})
