from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("agent/", include("agent.urls")),
    path("calls/", include("calls.urls")),
]

if settings.CONNECTYCUBE_SANDBOX:
    urlpatterns.append(path("cc-sandbox/api/", include("sandbox.urls")))
