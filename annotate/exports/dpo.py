"""DPO export: one JSON line per labelled pair, in TRL's conversational preference format.

{"prompt": [{"role": "user", "content": ...}, ...],
 "chosen": [{"role": "assistant", "content": ...}],
 "rejected": [{"role": "assistant", "content": ...}], ...provenance}
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO

from annotate.exports.labels import majority_label
from annotate.models import Choice, Comparison, ComparisonKind, Project, Source


def dpo_rows(*, project: Project, min_agreement: float = 0.0) -> Iterator[dict]:
    comparisons = (
        Comparison.objects.filter(project=project, kind=ComparisonKind.PAIR)
        .select_related("prompt", "candidate_a", "candidate_b", "resolution")
        .prefetch_related("judgments")
        .order_by("id")
    )
    for comparison in comparisons.iterator(chunk_size=1000):
        human = [j.choice for j in comparison.judgments.all() if j.source == Source.HUMAN]
        resolution = getattr(comparison, "resolution", None)
        if resolution is not None and resolution.choice in (Choice.A, Choice.B):
            label, agreement, method = resolution.choice, 1.0, resolution.method
        else:
            label, agreement = majority_label(human)
            method = "majority"
        if label is None or agreement < min_agreement:
            continue
        chosen, rejected = (
            (comparison.candidate_a, comparison.candidate_b)
            if label == Choice.A
            else (comparison.candidate_b, comparison.candidate_a)
        )
        yield {
            "prompt": comparison.prompt.messages,
            "chosen": [{"role": "assistant", "content": chosen.text}],
            "rejected": [{"role": "assistant", "content": rejected.text}],
            "prompt_id": comparison.prompt.external_id,
            "comparison_id": comparison.pk,
            "label_method": method,
            "n_human_judgments": len(human),
            "agreement": round(agreement, 4),
        }


def dpo_write(*, project: Project, out: IO[str], min_agreement: float = 0.0) -> int:
    count = 0
    for row in dpo_rows(project=project, min_agreement=min_agreement):
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count
