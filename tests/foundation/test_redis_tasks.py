"""One task through the real Redis queue (django-tasks-rq) and a real RQ worker process."""

import os
import subprocess
import sys
import time

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


SCHEDULED_REDIS_URL = "redis://127.0.0.1:6379/13"  # its own database, emptied before and after


@pytest.fixture
def scheduled_redis():
    connection = redis.Redis.from_url(SCHEDULED_REDIS_URL)
    connection.flushdb()
    yield connection
    connection.flushdb()


def test_a_delayed_task_runs_only_with_the_workers_scheduler(transactional_db, owner, scheduled_redis):
    """`run_after` (provider polls, retries) becomes an RQ scheduled job: a worker started without
    `--with-scheduler` never runs it, the README's worker command does once it is due."""
    persona = WritingPersona.objects.create(user=owner, name="p")
    overdue = MediaJob.objects.create(
        user=owner,
        persona=persona,
        kind=JobKind.RENDER,
        provider="offline",
        status=JobStatus.WAITING_PROVIDER,
        deadline=timezone.now() - timezone.timedelta(minutes=1),
    )
    env = {**os.environ, "TASKS_URL": SCHEDULED_REDIS_URL, "DATABASE_URL": subprocess_database_url()}
    enqueue = manage(
        "shell",
        "-c",
        "import time; from datetime import timedelta; from django.utils import timezone; "
        "from media_pipeline.tasks import sweep_jobs; "
        "sweep_jobs.using(run_after=timezone.now() + timedelta(seconds=2)).enqueue(); print(time.time())",
        env=env,
    )
    assert enqueue.returncode == 0, enqueue.stderr
    due_at = float(enqueue.stdout.split()[-1]) + 2
    assert scheduled_redis.llen("rq:queue:default") == 0
    assert scheduled_redis.zcard("rq:scheduled:default") == 1
    without_scheduler = manage("rqworker", "default", "--burst", "--job-class", "django_tasks_rq.Job", env=env)
    assert without_scheduler.returncode == 0, without_scheduler.stderr
    overdue.refresh_from_db()
    assert overdue.status == JobStatus.WAITING_PROVIDER  # still waiting: nothing moved it to the queue
    time.sleep(max(0.0, due_at - time.time()) + 0.5)
    worker = manage("rqworker", "default", "--burst", "--job-class", "django_tasks_rq.Job", "--with-scheduler", env=env)
    assert worker.returncode == 0, worker.stderr
    overdue.refresh_from_db()
    assert overdue.status == JobStatus.FAILED
    assert scheduled_redis.zcard("rq:scheduled:default") == 0
