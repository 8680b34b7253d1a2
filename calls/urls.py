from django.urls import path

from . import views

app_name = "calls"
urlpatterns = [
    path("export.csv", views.export_csv, name="export_csv"),
]
