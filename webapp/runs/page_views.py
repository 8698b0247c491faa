"""The run page: detail with live charts, stop, history and log endpoints, compare.

Views stay thin: history lives in :mod:`webapp.runs.history`, run control in
:mod:`worker.control`. Every run is looked up through ``get_visible_or_404``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from webapp.accounts.permissions import get_visible_or_404, visible_to
from webapp.jsonapi import BadRequest, json_view
from webapp.runs import config_diff, history
from webapp.runs.models import Run
from webapp.runs.serializers import checkpoint_dict, run_summary, sample_dict
from worker import launcher

LOG_DEFAULT_LINES = 200
LOG_MAX_LINES = 5000
LOG_MAX_LINE_CHARS = 2000  # a runaway progress bar must not fill the page
COMPARE_MAX_RUNS = 10
COMPARE_MAX_POINTS = 2000
# The compare page's metric picker: value -> label (static/js/compare.js draws each).
COMPARE_METRICS = {
    "loss": "Loss (train + val)",
    "lr": "Learning rate",
    "grad_norm": "Gradient norm",
    "tokens_per_s": "Tokens / s",
    "mfu": "MFU",
}


def visible_run(request: HttpRequest, run_id: int) -> Run:
    """The run ``run_id`` if the user may see it, else Http404."""
    return get_visible_or_404(request.user, Run.objects.select_related("owner"), pk=run_id)


@require_GET
def detail(request: HttpRequest, run_id: int) -> HttpResponse:
    """The run page; charts, log and samples fill in from the APIs and the websocket."""
    run = visible_run(request, run_id)
    checkpoints = [checkpoint_dict(c) for c in run.checkpoints.filter(deleted=False)]
    samples = [sample_dict(s) for s in run.samples.all()[:20]]
    return render(
        request,
        "runs/detail.html",
        {
            "run": run,
            "page_data": {
                "run": run_summary(run),
                "checkpoints": checkpoints,
                "samples": samples,
                "ws_path": f"/ws/runs/{run.pk}/",
                "metrics_url": f"/api/runs/{run.pk}/metrics",
                "log_url": f"/api/runs/{run.pk}/log",
                "samples_url": f"/api/runs/{run.pk}/samples",
                "checkpoints_url": f"/api/runs/{run.pk}/checkpoints/",
                "base_url": f"/runs/{run.pk}/",
            },
        },
    )


@require_POST
def stop(request: HttpRequest, run_id: int) -> HttpResponse:
    """Ask the worker to stop a running run (it checkpoints, then exits as stopped)."""
    from worker.control import request_stop

    run = visible_run(request, run_id)
    if request_stop(run):
        messages.success(request, "Stop requested: the run saves a checkpoint, then stops.")
    else:
        messages.error(request, f"Run is {run.state}; only an active run can be stopped.")
    return redirect("runpage:detail", run_id=run.pk)


@json_view("GET")
def metrics_api(request: HttpRequest, run_id: int) -> HttpResponse:
    """History for the charts: downsampled, or every point after ``?after=<step>``."""
    run = visible_run(request, run_id)
    after = _int_param(request, "after", minimum=0, default=None)
    max_points = _int_param(
        request,
        "max_points",
        minimum=history.MIN_MAX_POINTS,
        maximum=history.MAX_MAX_POINTS,
        default=history.DEFAULT_MAX_POINTS,
    )
    data = history.load_history(run, max_points=max_points, after=after)
    data["run"] = run_summary(run)
    return JsonResponse(data)


@json_view("GET")
def log_api(request: HttpRequest, run_id: int) -> HttpResponse:
    """The last ``?lines=`` lines of the run's ``train.log``."""
    run = visible_run(request, run_id)
    count = _int_param(
        request, "lines", minimum=1, maximum=LOG_MAX_LINES, default=LOG_DEFAULT_LINES
    )
    lines = launcher.log_tail(run.run_dir, count)
    return JsonResponse({"lines": [line[:LOG_MAX_LINE_CHARS] for line in lines]})


@json_view("GET")
def samples_api(request: HttpRequest, run_id: int) -> HttpResponse:
    """The run's latest generated samples, newest first."""
    run = visible_run(request, run_id)
    return JsonResponse({"samples": [sample_dict(s) for s in run.samples.all()[:20]]})


@require_GET
def compare(request: HttpRequest) -> HttpResponse:
    """Pick runs (``?ids=1&ids=2``), overlay a metric (``?metric=lr``) and list the
    config keys whose values differ between them."""
    selected = _compare_ids(request)
    metric = request.GET.get("metric", "loss")
    if metric not in COMPARE_METRICS:
        metric = "loss"
    runs = visible_to(request.user, Run.objects.select_related("owner"))
    chosen = sorted(runs.filter(pk__in=selected), key=lambda r: selected.index(r.pk))
    if len(chosen) != len(selected):
        missing = sorted(set(selected) - {r.pk for r in chosen})
        messages.error(request, f"No such run: {', '.join(map(str, missing))}")
    return render(
        request,
        "runs/compare.html",
        {
            "candidates": runs[:100],
            "selected": {r.pk for r in chosen},
            "chosen": chosen,
            "metrics": COMPARE_METRICS,
            "metric": metric,
            "configs": config_diff.compare_configs([r.config for r in chosen]),
            "page_data": {
                "runs": [{"id": r.pk, "name": r.name, "state": r.state} for r in chosen],
                "max_points": COMPARE_MAX_POINTS,
            },
        },
    )


def _int_param(
    request: HttpRequest,
    name: str,
    *,
    minimum: int,
    maximum: int | None = None,
    default: Any,
) -> Any:
    """An integer query parameter within bounds, or BadRequest naming it."""
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer", field=name) from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise BadRequest(f"{name} must be {bounds}", field=name)
    return value


def _compare_ids(request: HttpRequest) -> list[int]:
    """Run ids from ``?ids=1&ids=2`` or ``?ids=1,2``; a bad value is reported, not guessed."""
    ids: list[int] = []
    for raw in request.GET.getlist("ids"):
        for part in filter(None, (p.strip() for p in raw.split(","))):
            if part.isascii() and part.isdigit():  # "²" is a digit to str.isdigit, not to int()
                ids.append(int(part))
            else:
                messages.error(request, f"ids: {part[:20]!r} is not a run id")
    ids = list(dict.fromkeys(ids))
    if len(ids) > COMPARE_MAX_RUNS:
        messages.error(request, f"ids: at most {COMPARE_MAX_RUNS} runs; showing the first ones")
    return ids[:COMPARE_MAX_RUNS]
