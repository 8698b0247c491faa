"""Views of the run list and the run form (thin: logic lives in forms/launch/listing)."""

from __future__ import annotations

import yaml
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from trainer.config import ConfigError, dump_config, parse_config
from webapp.accounts.permissions import get_visible_or_404, visible_to
from webapp.runs import listing
from webapp.runs.forms import ImportYamlForm, RunForm, initial_for_config
from webapp.runs.launch import LaunchError, launch_run
from webapp.runs.models import Run


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    state = request.GET.get("state") or ""
    runs = listing.filter_runs(visible_to(request.user, Run.objects.select_related("owner")), state)
    page = Paginator(runs, listing.PAGE_SIZE).get_page(request.GET.get("page"))
    now = timezone.now()
    rows = [listing.list_row(r, now) for r in page.object_list]
    states = ["active", *Run.State.values]
    return render(
        request, "runs/index.html", {"page": page, "rows": rows, "state": state, "states": states}
    )


def _render_form(
    request: HttpRequest, form: RunForm, warnings=(), status: int = 200
) -> HttpResponse:
    context = {"form": form, "import_form": ImportYamlForm(), "warnings": list(warnings)}
    return render(request, "runs/form.html", context, status=status)


@require_http_methods(["GET", "POST"])
def new(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _render_form(request, RunForm(request.user))
    form = RunForm(request.user, request.POST)
    if form.is_valid():
        assert form.config is not None
        try:
            run = launch_run(
                request.user, form.config, form.cleaned_data["base_model"], form.selected_datasets()
            )
        except LaunchError as exc:
            form.add_error("datasets", str(exc))
        else:
            messages.success(request, f"Run {run.name!r} queued.")
            return redirect(f"/runs/{run.pk}/")
    return _render_form(request, form, status=400)


@require_http_methods(["GET", "POST"])
def import_yaml(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return redirect("runs:new")  # the import form lives on the new-run page
    imported = ImportYamlForm(request.POST, request.FILES)
    if not imported.is_valid():
        context = {"form": RunForm(request.user), "import_form": imported, "warnings": []}
        return render(request, "runs/form.html", context, status=400)
    config = imported.cleaned_data["config"]
    initial, warnings = initial_for_config(request.user, config)
    try:
        parse_config(config)
    except ConfigError as exc:
        warnings += [f"{k}: {v}" for k, v in exc.errors.items() if k != "data.corpora"]
    messages.info(request, "Config imported: check the values and launch.")
    return _render_form(request, RunForm(request.user, initial=initial), warnings)


@require_GET
def clone(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_visible_or_404(request.user, Run.objects.all(), pk=pk)
    initial, warnings = initial_for_config(request.user, run.config)
    initial["name"] = f"{run.name} (copy)"[:200]
    return _render_form(request, RunForm(request.user, initial=initial), warnings)


@require_GET
def config_yaml(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_visible_or_404(request.user, Run.objects.all(), pk=pk)
    try:
        text = dump_config(parse_config(run.config))
    except ConfigError:
        # A config stored under an older schema: export what was stored, unchanged.
        text = yaml.safe_dump(run.config, sort_keys=False)
    response = HttpResponse(text, content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="run-{run.pk}.yaml"'
    return response
