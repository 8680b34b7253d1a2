from django.urls import path

from . import board_views, views

app_name = "calls"
urlpatterns = [
    path("export.csv", views.export_csv, name="export_csv"),
    path("board/", board_views.board, name="board"),
    path("board/actions/<slug:action>", board_views.call_action, name="call_action"),
]
