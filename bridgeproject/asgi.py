"""ASGI entry point for daphne: HTTP through Django, WebSockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bridgeproject.settings")
# Django must be set up before anything imports models (consumers do).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path, re_path  # noqa: E402

from bridgeproject.routing import websocket_urlpatterns  # noqa: E402

routes = [*websocket_urlpatterns]
app_routes = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(routes)))

if settings.CONNECTYCUBE_SANDBOX:
    # The sandbox chat is reached by apps from any origin (the SDK is no browser page of ours),
    # and authenticates with SASL inside the stream, so it skips the origin and session checks.
    from sandbox.routing import websocket_urlpatterns as sandbox_ws

    application = ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": URLRouter(
                [path("cc-sandbox/chat/", URLRouter(sandbox_ws)), re_path(r"", app_routes)]
            ),
        }
    )
else:
    application = ProtocolTypeRouter({"http": django_asgi_app, "websocket": app_routes})
