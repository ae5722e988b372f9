"""Aligner export: one JSON line per correction, {"question", "answer", "correction"} plus provenance."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO

from annotate.models import Candidate, Project


def correction_rows(*, project: Project) -> Iterable[dict]:
    """Aligner training triples: {"question", "answer", "correction"} plus provenance."""
    corrections = (
        Candidate.objects.filter(prompt__project=project, parent__isnull=False)
        .select_related("prompt", "parent")
        .order_by("pk")
    )
    for c in corrections.iterator(chunk_size=1000):
        yield {
            "question": c.prompt.messages,
            "answer": c.parent.text,
            "correction": c.text,
            "prompt_id": c.prompt.external_id,
            "source": c.meta.get("source", "model"),
        }


def corrections_write(*, project: Project, out: IO[str]) -> int:
    count = 0
    for row in correction_rows(project=project):
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count
