"""Celery tasks: thin wrappers that pass ids to services. GPU work is routed to the `gpu` queue."""

from __future__ import annotations

from celery import shared_task

from annotate.services import generation


@shared_task(name="annotate.tasks.gpu_generate_candidates", acks_late=True)
def gpu_generate_candidates(set_ids: list[int]) -> dict[str, int]:
    return generation.candidate_sets_generate(set_ids=list(set_ids))


@shared_task(name="annotate.tasks.export_run", acks_late=True)
def export_run(job_id: int) -> dict[str, int | str | None]:
    """Write one export job's file (default queue)."""
    from annotate.services.exports import export_job_run

    job = export_job_run(job_id=job_id)
    return {"job": job_id, "status": job.status if job else None, "rows": job.rows if job else None}
