from django.urls import path

from webapp.runs import api, views, worker_views

app_name = "runs"
urlpatterns = [
    path("", views.index, name="index"),
    path("workers/", worker_views.workers, name="workers"),
    path("runs/new/", views.new, name="new"),
    path("runs/import/", views.import_yaml, name="import"),
    path("runs/<int:pk>/clone/", views.clone, name="clone"),
    path("runs/<int:pk>/config.yaml", views.config_yaml, name="config_yaml"),
    path("api/runs/", api.runs, name="api_runs"),
    path("api/runs/<int:pk>/", api.run_detail, name="api_run"),
    path("api/runs/<int:pk>/checkpoints/", api.checkpoints, name="api_checkpoints"),
]
