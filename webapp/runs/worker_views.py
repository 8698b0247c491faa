"""The workers page: which workers are alive, their hosts, GPUs and what they run."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from webapp.accounts.permissions import visible_to
from webapp.runs.models import Run
from worker.hosts import alive_workers


def workers(request: HttpRequest) -> HttpResponse:
    """Workers seen within the lost-run limit; each lists the runs the user may see."""
    rows = alive_workers(visible_to(request.user, Run.objects.all()))
    return render(request, "runs/workers.html", {"rows": rows})
