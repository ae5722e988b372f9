"""Test overrides: a fixed key, fast hashing, eager Celery unless a test starts a real worker."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "concord-tests-only")

from annotate.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
