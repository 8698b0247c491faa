from django.urls import path

from webapp.accounts import views

urlpatterns = [path("healthz", views.healthz, name="healthz")]
