"""Prompts: multi-turn conversations to be answered."""

from __future__ import annotations

from django.db import models

from annotate.models.projects import Project


class Prompt(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompts")
    external_id = models.CharField(max_length=200, help_text="The id given in the imported file.")
    messages = models.JSONField(help_text='A list of {"role", "content"} turns ending with a user turn.')
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "id"]
        constraints = [models.UniqueConstraint(fields=["project", "external_id"], name="prompt_unique_external_id")]

    def __str__(self) -> str:
        return f"{self.external_id}: {self.last_user_text[:60]}"

    @property
    def last_user_text(self) -> str:
        for message in reversed(self.messages or []):
            if message.get("role") == "user":
                return message.get("content", "")
        return ""
