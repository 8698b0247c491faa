"""The workers page: which workers are alive, their GPUs and what they run."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from webapp.runs.models import WorkerHost


def workers(request: HttpRequest) -> HttpResponse:
    return render(request, "runs/workers.html", {"workers": WorkerHost.objects.all()})
