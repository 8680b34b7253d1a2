"""WSGI entry point, for deployments that serve the admin without WebSockets."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bridgeproject.settings")
application = get_wsgi_application()
