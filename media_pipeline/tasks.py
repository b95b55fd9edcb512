"""Thin tasks: load by id, call a service. Job state lives in MediaJob, not in the queue."""

from django.tasks import task


@task
def run_job(job_id: int, step_token: int | None = None) -> None:
    """One step of a job; `step_token` is the job's token when the step was queued (tasks queued
    without one claim whatever step is due)."""
    from media_pipeline.services import run_job as run_job_step

    run_job_step(job_id, step_token)


@task
def sweep_jobs() -> dict:
    """Re-queue jobs of dead workers and fail overdue ones (also `manage.py sweep_jobs`)."""
    from media_pipeline.services import sweep_jobs as sweep

    return sweep()
