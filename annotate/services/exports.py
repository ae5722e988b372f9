"""Export jobs: a manager asks for a dataset, a worker writes it, the manager downloads it."""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from annotate import selectors
from annotate.exports.dpo import dpo_write
from annotate.models import ExportFormat, ExportJob, Project, Role, RunStatus

logger = logging.getLogger(__name__)
WRITERS = {ExportFormat.DPO: dpo_write}


def export_dir() -> Path:
    """Where export files live (CONCORD_EXPORT_DIR, default var/exports)."""
    return Path(getattr(settings, "CONCORD_EXPORT_DIR", settings.VAR_DIR / "exports"))


def export_path(*, job: ExportJob) -> Path | None:
    """The finished file of `job`, or None when there is none (yet)."""
    if job.status != RunStatus.DONE or not job.file_name:
        return None
    path = export_dir() / job.file_name
    return path if path.is_file() else None


def export_job_create(
    *, project: Project, user: AbstractBaseUser, fmt: str = ExportFormat.DPO, min_agreement: float = 0.0
) -> ExportJob:
    """Record an export request and queue its task (default queue) once the row is committed.

    PermissionDenied unless `user` manages the project (or is staff).
    """
    from annotate.tasks import export_run

    if Role.MANAGER not in selectors.roles_in(user=user, project=project):
        raise PermissionDenied("Only the project's managers export data.")

    job = ExportJob.objects.create(
        project=project,
        format=fmt,
        params={"min_agreement": float(min_agreement)},
        status=RunStatus.QUEUED,
        requested_by=user,
    )
    transaction.on_commit(lambda: export_run.delay(job.pk))
    return job


def export_job_run(*, job_id: int) -> ExportJob | None:
    """Write the export file of a job. Safe to run twice: a finished job is left as it is, and the
    file is written under a temporary name and renamed, so no one downloads half a file."""
    with transaction.atomic():
        job = ExportJob.objects.select_for_update().filter(pk=job_id).select_related("project").first()
        if job is None or job.status == RunStatus.DONE:
            return job
        job.status, job.started_at, job.attempts = RunStatus.RUNNING, timezone.now(), job.attempts + 1
        job.save(update_fields=["status", "started_at", "attempts"])
    name = f"{job.project.slug}-{job.format}-{job.pk}.jsonl"
    folder = export_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / (name + ".partial")
        with tmp.open("w", encoding="utf-8") as out:
            rows = WRITERS[job.format](project=job.project, out=out, **job.params)
        tmp.replace(folder / name)
    except Exception as exc:  # recorded on the row the page polls; not retried (bad data stays bad)
        logger.exception("export %s failed", job.pk)
        job.status, job.error, job.finished_at = RunStatus.FAILED, f"{type(exc).__name__}: {exc}", timezone.now()
        job.save(update_fields=["status", "error", "finished_at"])
        return job
    job.status, job.file_name, job.rows = RunStatus.DONE, name, rows
    job.size_bytes, job.error, job.finished_at = (folder / name).stat().st_size, "", timezone.now()
    job.save(update_fields=["status", "file_name", "rows", "size_bytes", "error", "finished_at"])
    return job
