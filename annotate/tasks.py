"""Celery tasks: thin wrappers that pass ids to services. GPU work is routed to the `gpu` queue."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from annotate.services import generation


# Past the soft limit the service records the unfinished sets as failed (retryable); the hard limit
# kills the child, the message is redelivered (acks_late) and a new attempt takes the sets over.
@shared_task(
    bind=True,
    name="annotate.tasks.gpu_generate_candidates",
    acks_late=True,
    soft_time_limit=settings.CONCORD_GENERATION_SOFT_LIMIT_S,
    time_limit=settings.CONCORD_GENERATION_HARD_LIMIT_S,
)
def gpu_generate_candidates(self, set_ids: list[int]) -> dict[str, int]:
    # The task id survives redelivery, so a redelivered message can take over its own sets.
    return generation.candidate_sets_generate(set_ids=list(set_ids), attempt_key=self.request.id)


@worker_ready.connect
def resume_queued_work(**kwargs) -> None:
    """Queued sets whose messages never reached the broker (it was down) are sent again."""
    generation.candidate_sets_dispatch_queued()


@shared_task(name="annotate.tasks.export_run", acks_late=True)
def export_run(job_id: int) -> dict[str, int | str | None]:
    """Write one export job's file (default queue)."""
    from annotate.services.exports import export_job_run

    job = export_job_run(job_id=job_id)
    return {"job": job_id, "status": job.status if job else None, "rows": job.rows if job else None}


@shared_task(name="annotate.tasks.gpu_judge_run", acks_late=True)
def gpu_judge_run(run_id: int) -> dict:
    """Run one AI judge over a project (see services.judging); safe to receive twice."""
    from annotate.services import judging

    return judging.judge_run_execute(run_id=run_id)
