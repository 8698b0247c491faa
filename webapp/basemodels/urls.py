from django.urls import path

from webapp.basemodels import views

app_name = "basemodels"
urlpatterns = [path("", views.index, name="index")]
