from django.urls import path

from webapp.datasets import views

app_name = "datasets"
urlpatterns = [
    path("", views.index, name="index"),
    path("uploads/", views.create_upload, name="create_upload"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/delete/", views.delete, name="delete"),
    path("<int:pk>/status/", views.status, name="status"),
    path("<int:pk>/chunk/", views.chunk, name="chunk"),
    path("<int:pk>/complete/", views.complete, name="complete"),
]
