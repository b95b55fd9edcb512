"""One task through the real Redis queue (django-tasks-rq) and a real RQ worker process."""

import os
import subprocess
import sys

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from media_pipeline.models import JobKind, JobStatus, MediaJob
from personas.models import WritingPersona
from tests.conftest import subprocess_database_url

REDIS_URL = "redis://127.0.0.1:6379/15"
pytestmark = pytest.mark.redis


def manage(*args, env):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )


def test_a_task_runs_through_redis_and_an_rq_worker(transactional_db, owner):
    redis.Redis.from_url(REDIS_URL).flushdb()
    persona = WritingPersona.objects.create(user=owner, name="p")
    overdue = MediaJob.objects.create(
        user=owner,
        persona=persona,
        kind=JobKind.RENDER,
        provider="offline",
        status=JobStatus.WAITING_PROVIDER,
        deadline=timezone.now() - timezone.timedelta(minutes=1),
    )
    env = {**os.environ, "TASKS_URL": REDIS_URL, "DATABASE_URL": subprocess_database_url()}
    enqueue = manage(
        "shell", "-c", "from media_pipeline.tasks import sweep_jobs; print(sweep_jobs.enqueue().backend)", env=env
    )
    assert enqueue.returncode == 0, enqueue.stderr
    assert redis.Redis.from_url(REDIS_URL).llen("rq:queue:default") == 1
    work = manage("rqworker", "default", "--burst", "--job-class", "django_tasks_rq.Job", env=env)
    assert work.returncode == 0, work.stderr
    overdue.refresh_from_db()
    assert overdue.status == JobStatus.FAILED
    assert redis.Redis.from_url(REDIS_URL).llen("rq:queue:default") == 0
