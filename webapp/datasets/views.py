"""Views of the datasets app: pages and the upload JSON endpoints (logic in upload.py)."""

from __future__ import annotations

import shutil

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from webapp.accounts.permissions import get_visible_or_404, visible_to
from webapp.datasets import upload
from webapp.datasets.models import Dataset
from webapp.jsonapi import BadRequest, json_body, json_view


def status_dict(d: Dataset) -> dict:
    """The JSON the upload widget and the dataset page poll."""
    return {
        "id": d.pk,
        "name": d.name,
        "filename": d.filename,
        "state": d.state,
        "size_bytes": d.size_bytes,
        "received_bytes": d.received_bytes,
        "chunk_bytes": settings.UPLOAD_CHUNK_BYTES,
        "error": d.error,
        "url": f"/datasets/{d.pk}/",
    }


def _visible(request: HttpRequest, pk: int) -> Dataset:
    return get_visible_or_404(request.user, Dataset.objects.all(), pk=pk)


def index(request: HttpRequest) -> HttpResponse:
    datasets = visible_to(request.user, Dataset.objects.select_related("owner"))
    return render(
        request,
        "datasets/index.html",
        {
            "datasets": datasets,
            "chunk_bytes": settings.UPLOAD_CHUNK_BYTES,
            "max_bytes": settings.UPLOAD_MAX_BYTES,
            "quota_bytes": settings.UPLOAD_USER_QUOTA_BYTES,
            "used_bytes": upload.used_bytes(request.user),
            "extensions": settings.UPLOAD_EXTENSIONS,
            "abandon_hours": settings.UPLOAD_ABANDON_HOURS,
            "has_uploading": datasets.filter(state=Dataset.State.UPLOADING).exists(),
        },
    )


def detail(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = _visible(request, pk)
    runs = dataset.run_set.select_related("owner").order_by("-created_at")[:20]
    return render(
        request,
        "datasets/detail.html",
        {"dataset": dataset, "runs": runs, "status": status_dict(dataset)},
    )


@require_POST
def delete(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = _visible(request, pk)
    run_ids = list(dataset.rundataset_set.values_list("run_id", flat=True)[:10])
    if run_ids:
        used_by = ", ".join(f"#{i}" for i in run_ids)
        messages.error(
            request, f"Dataset {dataset.name!r} is used by run(s) {used_by}; not deleted."
        )
        return redirect("datasets:detail", pk=dataset.pk)
    shutil.rmtree(dataset.storage_dir, ignore_errors=True)
    dataset.delete()
    messages.success(request, f"Dataset {dataset.name!r} deleted.")
    return redirect("datasets:index")


@json_view("POST")
def create_upload(request: HttpRequest) -> HttpResponse:
    new = upload.parse_new_upload(json_body(request))
    dataset = upload.start_upload(request.user, new)
    return JsonResponse(status_dict(dataset), status=201)


@json_view("GET")
def status(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = _visible(request, pk)
    if dataset.state == Dataset.State.UPLOADING:
        upload.sync_received_bytes(dataset)
    return JsonResponse(status_dict(dataset))


@json_view("PUT", "POST")
def chunk(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = _visible(request, pk)
    try:
        offset = int(request.GET.get("offset", ""))
        length = int(request.META.get("CONTENT_LENGTH") or -1)
    except ValueError:
        raise BadRequest("offset: must be an integer (bytes); Content-Length required") from None
    if offset < 0 or length < 0:
        raise BadRequest("offset and Content-Length must be non-negative integers")
    # The body is streamed from the request, never loaded at once (request.body is unused).
    received = upload.append_chunk(dataset.pk, offset, request, length)
    return JsonResponse({"id": dataset.pk, "received_bytes": received})


@json_view("POST")
def complete(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = _visible(request, pk)
    data = json_body(request)
    dataset = upload.complete_upload(dataset, data.get("sha256"))
    return JsonResponse(status_dict(dataset))
