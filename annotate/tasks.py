"""Celery tasks: thin wrappers that pass ids to services. GPU work is routed to the `gpu` queue."""

from __future__ import annotations

from celery import shared_task

from annotate.services import generation


@shared_task(name="annotate.tasks.gpu_generate_candidates", acks_late=True)
def gpu_generate_candidates(set_ids: list[int]) -> dict[str, int]:
    return generation.candidate_sets_generate(set_ids=list(set_ids))


@shared_task(name="annotate.tasks.gpu_judge_run", acks_late=True)
def gpu_judge_run(run_id: int) -> dict:
    """Run one AI judge over a project (see services.judging); safe to receive twice."""
    from annotate.services import judging

    return judging.judge_run_execute(run_id=run_id)
