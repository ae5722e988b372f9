"""Prompt import rate: N prompts (JSONL, mixed text and multi-turn) validated and written in one go."""

from __future__ import annotations

import json
import time
import uuid

from django.db import connection

from annotate.models import Project, Prompt
from annotate.services.prompt_import import prompts_import, prompts_parse


def add_arguments(parser) -> None:
    parser.add_argument("--prompts", type=int, default=100_000)


def _content(n: int) -> bytes:
    lines = []
    for i in range(n):
        if i % 5 == 0:
            row = {
                "id": f"b-{i}",
                "messages": [
                    {"role": "user", "content": f"Question {i}: how should I plan my week?"},
                    {"role": "assistant", "content": "Start with your fixed commitments."},
                    {"role": "user", "content": "And then?"},
                ],
                "metadata": {"batch": i // 1000},
            }
        else:
            row = {"id": f"b-{i}", "prompt": f"Prompt number {i}: explain something interesting.", "metadata": {"k": i}}
        lines.append(json.dumps(row))
    return "\n".join(lines).encode()


def run(options: dict) -> dict:
    n = options["prompts"]
    content = _content(n)
    project = Project.objects.create(name="benchmark import", slug=f"bench-import-{uuid.uuid4().hex[:8]}")
    try:
        t0 = time.perf_counter()
        prompts_parse(content=content, filename="bench.jsonl")
        parse_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = prompts_import(project=project, content=content, filename="bench.jsonl")
        total_s = time.perf_counter() - t0
        stored = Prompt.objects.filter(project=project).count()
    finally:
        project.delete()
    return {
        "benchmark": "import_prompts",
        "database": connection.vendor,
        "prompts": n,
        "file_mb": round(len(content) / 1e6, 2),
        "stored": stored,
        "created": report.created,
        "parse_validate_s": round(parse_s, 3),
        "import_total_s": round(total_s, 3),
        "prompts_per_s": round(n / total_s),
    }
