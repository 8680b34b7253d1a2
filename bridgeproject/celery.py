"""The Celery app: the AMI listener task and the per-call media sessions run here."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bridgeproject.settings")

app = Celery("bridgeproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
