"""REST routes of the sandbox, mounted under /cc-sandbox/api/ when CONNECTYCUBE_SANDBOX is on.

Every path answers with and without the `.json` suffix the SDK appends.
"""

from django.urls import re_path

from . import views

J = r"(?:\.json)?$"

urlpatterns = [
    re_path(rf"^session{J}", views.session_view, name="cc-sandbox-session"),
    re_path(rf"^login{J}", views.login_view, name="cc-sandbox-login"),
    re_path(rf"^users/v2{J}", views.users_v2_view, name="cc-sandbox-users-v2"),
    re_path(rf"^users/(?P<user_id>\d+){J}", views.user_view, name="cc-sandbox-user"),
    re_path(rf"^events{J}", views.events_view, name="cc-sandbox-events"),
    re_path(rf"^subscriptions{J}", views.subscriptions_view, name="cc-sandbox-subscriptions"),
    re_path(rf"^calls/reject{J}", views.call_reject_view, name="cc-sandbox-call-reject"),
]
