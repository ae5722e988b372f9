"""The Celery app. Two queues: `default` (database work) and `gpu` (model work, prefetch 1)."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotate.settings")

app = Celery("concord")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("gpu"))
app.autodiscover_tasks()
