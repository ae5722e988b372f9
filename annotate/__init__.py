"""Concord: preference-data annotation for LLM alignment (the Django project and app)."""

from annotate.celery import app as celery_app

__all__ = ("celery_app",)
