"""Generator and judge specifications: which model, where, with which parameters.

Secrets never live here: `api_key_env` names the environment variable that holds the key.
"""

from __future__ import annotations

from django.db import models


class ModelKind(models.TextChoices):
    GGUF = "gguf", "Local GGUF file"
    TRANSFORMERS = "transformers", "Local Hugging Face directory"
    OPENAI = "openai", "OpenAI-compatible endpoint"


class _ModelSpec(models.Model):
    name = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=20, choices=ModelKind.choices)
    model = models.CharField(
        max_length=500, blank=True, help_text="Directory path, or the model name an endpoint serves."
    )
    gguf_file = models.CharField(max_length=300, blank=True)
    endpoint = models.URLField(blank=True, help_text="Base URL of an OpenAI-compatible server (…/v1).")
    api_key_env = models.CharField(
        max_length=120, blank=True, help_text="Name of the environment variable holding the API key."
    )
    params = models.JSONField(default=dict, blank=True, help_text="Sampling and other options.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class GeneratorSpec(_ModelSpec):
    class Meta(_ModelSpec.Meta):
        constraints = [
            models.CheckConstraint(condition=models.Q(kind__in=ModelKind.values), name="generatorspec_kind_valid")
        ]


class JudgeSpec(_ModelSpec):
    version = models.CharField(max_length=40, default="1", help_text="Bump when the prompt or model changes.")

    class Meta(_ModelSpec.Meta):
        constraints = [
            models.CheckConstraint(condition=models.Q(kind__in=ModelKind.values), name="judgespec_kind_valid")
        ]
