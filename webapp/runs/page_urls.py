"""URLs of the run page (detail, live history, checkpoints); kept apart from the run list/form."""

from __future__ import annotations

from django.urls import path

from webapp.runs import checkpoint_views, page_views

app_name = "runpage"
CKPT = "runs/<int:run_id>/checkpoints/<int:checkpoint_id>/"
urlpatterns = [
    path("runs/compare/", page_views.compare, name="compare"),
    path("runs/<int:run_id>/", page_views.detail, name="detail"),
    path("runs/<int:run_id>/stop/", page_views.stop, name="stop"),
    path(CKPT + "resume/", checkpoint_views.resume, name="checkpoint-resume"),
    path(CKPT + "export/", checkpoint_views.export, name="checkpoint-export"),
    path(CKPT + "export.tar", checkpoint_views.export_download, name="checkpoint-download"),
    path(CKPT + "generate/", checkpoint_views.generate, name="checkpoint-generate"),
    path(CKPT + "delete/", checkpoint_views.delete, name="checkpoint-delete"),
    path(CKPT + "files/", checkpoint_views.files, name="checkpoint-files"),
    path("api/runs/<int:run_id>/metrics", page_views.metrics_api, name="metrics"),
    path("api/runs/<int:run_id>/log", page_views.log_api, name="log"),
    path("api/runs/<int:run_id>/samples", page_views.samples_api, name="samples"),
]
