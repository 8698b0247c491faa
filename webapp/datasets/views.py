"""Views of the datasets app (thin: logic lives in plain modules)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "datasets/index.html", {})
