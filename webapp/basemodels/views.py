"""Views of the basemodels app (thin: checks live in probe.py, saving in registry.py)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from webapp.accounts.permissions import get_visible_or_404, visible_to
from webapp.basemodels.forms import RegisterModelForm
from webapp.basemodels.models import BaseModel
from webapp.basemodels.probe import ModelCheckError
from webapp.basemodels.registry import register_model


def index(request: HttpRequest) -> HttpResponse:
    form = RegisterModelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            model = register_model(
                request.user, form.cleaned_data["name"], form.cleaned_data["source"]
            )
        except ModelCheckError as exc:
            form.add_error("source", str(exc).removeprefix("source: "))
        else:
            messages.success(request, f"Registered {model.name}.")
            return redirect("basemodels:detail", pk=model.pk)
    models = visible_to(request.user, BaseModel.objects.select_related("owner"))
    status = 400 if request.method == "POST" else 200
    return render(request, "basemodels/index.html", {"form": form, "models": models}, status=status)


def detail(request: HttpRequest, pk: int) -> HttpResponse:
    model = get_visible_or_404(request.user, BaseModel.objects.all(), pk=pk)
    runs = model.run_set.order_by("-created_at")[:20]
    return render(request, "basemodels/detail.html", {"model": model, "runs": runs})


@require_POST
def delete(request: HttpRequest, pk: int) -> HttpResponse:
    model = get_visible_or_404(request.user, BaseModel.objects.all(), pk=pk)
    run_ids = list(model.run_set.values_list("pk", flat=True)[:10])
    if run_ids:
        used_by = ", ".join(f"#{i}" for i in run_ids)
        messages.error(request, f"Model {model.name!r} is used by run(s) {used_by}; not removed.")
        return redirect("basemodels:detail", pk=model.pk)
    model.delete()  # only the registration: the files on disk or in the cache are left alone
    messages.success(request, f"Model {model.name!r} removed.")
    return redirect("basemodels:index")
