"""Celery tasks: thin wrappers that pass ids to services. GPU work is routed to the `gpu` queue."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_ready

from annotate.services import generation


@shared_task(bind=True, name="annotate.tasks.gpu_generate_candidates", acks_late=True)
def gpu_generate_candidates(self, set_ids: list[int]) -> dict[str, int]:
    # The task id survives redelivery, so a retried message can take over its own sets.
    return generation.candidate_sets_generate(set_ids=list(set_ids), attempt_key=self.request.id)


@worker_ready.connect
def resume_queued_work(**kwargs) -> None:
    """Queued sets whose messages never reached the broker (it was down) are sent again."""
    generation.candidate_sets_dispatch_queued()
