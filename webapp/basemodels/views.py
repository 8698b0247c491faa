"""Views of the basemodels app (thin: logic lives in plain modules)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "basemodels/index.html", {})
