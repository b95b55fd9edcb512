"""Job orchestration: avatar jobs (WaveSpeed adapter) run by the real database-queue worker loop
against a local fake WaveSpeed server with a fixed latency per request. The overhead is the
workers' busy time beyond waiting for the fake server; worker RSS is sampled as jobs complete.

Busy time is each worker loop's wall time minus the loop's own idle sleeps (`--interval`, taken
only when no task was ready; counted, and reported, so idle polling is never called overhead).
Process start-up (imports, the espeak calibration) happens before the clock starts. The time
waited on the fake is given two ways: requests x the fixed latency, and the fake's own measured
time per request (the latency plus its own work under load), which is what a client really waits.

Each job makes 6 requests (2 media uploads, the paid submit, 2 result polls, the download) in
3 task steps (start, poll "processing", poll "completed"). PROVIDER_POLL_SECONDS is 0 here, so
polls are re-enqueued at once instead of 5 s later.

    .venv/bin/python bench/job_orchestration.py [--quick]
"""

import time

import benchlib
from benchlib import BenchDatabase, Report, median
from fake_wavespeed import FakeServer

JOBS = 1000
WORKERS = 4  # I/O-bound: a worker waits on the provider most of the time
LATENCY = 0.05
REQUESTS_PER_JOB = 6
TARGET_OVERHEAD = 0.05


def _setup(env: dict) -> None:
    import logging

    benchlib.setup_django(env)
    from django.conf import settings

    for name in ("django.tasks", "django_tasks", "django_tasks_db"):
        logging.getLogger(name).setLevel(logging.WARNING)

    settings.PROVIDER_POLL_SECONDS = 0


def seed_jobs(env: dict, count: int) -> int:
    _setup(env)
    import io

    from django.contrib.auth.models import User
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from PIL import Image

    from media_pipeline import services
    from media_pipeline.models import JobKind
    from personas.models import Tier, WritingPersona

    user = User.objects.create_user("jobs", "jobs@example.com", "correct horse battery staple")
    user.subscription.tier = Tier.PRO
    user.subscription.save()
    persona = WritingPersona.objects.create(user=user, name="Jobs")
    out = io.BytesIO()
    with Image.open(benchlib.ROOT / "tests" / "assets" / "astronaut.png") as image:
        image.convert("RGB").resize((512, 512)).save(out, "PNG")
    portrait = default_storage.save("private/avatar_photos/bench-portrait.png", ContentFile(out.getvalue()))
    for _ in range(count):
        services.create_job(
            user=user,
            persona=persona,
            kind=JobKind.AVATAR_CREATE,
            provider="wavespeed",
            params={"photo_file": portrait, "portrait_file": portrait, "resolution": "480p", "aspect": "1:1"},
        )
    return count


def _run_queue_wait() -> float:
    """Seconds this thread has spent runnable but waiting for a CPU (Linux schedstat)."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def run_worker(env: dict, index: int, sample_every: int) -> dict:
    """One worker process: the django-tasks-db worker loop in batch mode (exits when the queue is empty)."""
    _setup(env)
    from django.db import connection
    from django.tasks.signals import task_finished
    from django_tasks_db.management.commands import db_worker
    from django_tasks_db.management.commands.db_worker import Worker

    import media_pipeline.providers.wavespeed  # noqa: F401  (start-up imports, outside the timing)
    import media_pipeline.tasks  # noqa: F401
    from media_pipeline.providers.local import OfflineVoiceProvider
    from media_pipeline.services import PREVIEW_LINE

    idle = [0.0]

    class _LoopTime:
        """The worker module's `time`, counting the loop's idle sleeps."""

        def __getattr__(self, name):
            return getattr(time, name)

        @staticmethod
        def sleep(seconds):
            idle[0] += seconds
            time.sleep(seconds)

    db_worker.time = _LoopTime()

    # Warm-up outside the timing: the narration's espeak calibration (once per process).
    voice = OfflineVoiceProvider()
    voice.synthesize(PREVIEW_LINE, voice_id="", profile={})
    synth = [benchlib.timed(voice.synthesize, PREVIEW_LINE, voice_id="", profile={})[0] for _ in range(9)]
    done, samples = [0], []

    def finished(sender, task_result, **kwargs):
        done[0] += 1
        if done[0] % sample_every == 0:
            samples.append((done[0], benchlib.rss_mb()))

    statements, sql_time, http_time = [0], [0.0], [0.0]

    def count(execute, sql, params, many, context):
        statements[0] += 1
        begun = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            sql_time[0] += time.perf_counter() - begun

    import requests

    send = requests.Session.send

    def timed_send(self, request, **kwargs):
        begun = time.perf_counter()
        try:
            return send(self, request, **kwargs)
        finally:
            http_time[0] += time.perf_counter() - begun

    requests.Session.send = timed_send

    task_finished.connect(finished, weak=False)
    start_rss = benchlib.rss_mb()
    cpu_started = time.process_time()
    queue_wait_started = _run_queue_wait()
    started = time.perf_counter()
    with connection.execute_wrapper(count):
        Worker(
            queue_names=["*"],
            interval=0.01,
            batch=True,
            backend_name="default",
            startup_delay=False,
            max_tasks=None,
            worker_id=f"bench-worker-{index}",
            excluded_queue_names=[],
        ).run()
    wall = time.perf_counter() - started
    return {
        "wall": wall,
        "idle": idle[0],
        "cpu": time.process_time() - cpu_started,
        "cpu_wait": _run_queue_wait() - queue_wait_started,
        "tasks": done[0],
        "samples": samples,
        "start_rss": start_rss,
        "end_rss": benchlib.rss_mb(),
        "synthesis": median(synth),
        "statements": statements[0],
        "sql": sql_time[0],
        "http": http_time[0],
    }


def outcome(env: dict) -> dict:
    _setup(env)
    from django.db.models import Count
    from django_tasks_db.models import DBTaskResult

    from media_pipeline.models import MediaJob

    jobs = dict(MediaJob.objects.values_list("status").annotate(n=Count("pk")))
    tasks = dict(DBTaskResult.objects.values_list("status").annotate(n=Count("pk")))
    return {"jobs": jobs, "tasks": tasks}


def run(quick: bool = False) -> Report:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    report = Report("Job orchestration (avatar jobs, fake WaveSpeed)")
    jobs = 200 if quick else JOBS
    port = benchlib.free_port()
    extra = {
        "AVATAR_PROVIDER": "wavespeed",
        "WAVESPEED_API_KEY": "bench-key",
        "WAVESPEED_BASE_URL": f"http://127.0.0.1:{port}",
    }
    with BenchDatabase("postgres", "jobs") as db, FakeServer(port, LATENCY) as fake:
        env = db.env(extra)
        benchlib.in_child(seed_jobs, env, jobs)
        sample_every = max(1, 3 * 100 // WORKERS)  # about every 100 jobs across the workers
        with ProcessPoolExecutor(WORKERS, mp_context=get_context("spawn")) as pool:
            started = time.perf_counter()
            futures = [pool.submit(run_worker, env, i, sample_every) for i in range(WORKERS)]
            workers = [f.result() for f in futures]
            wall = time.perf_counter() - started
        stats = fake.stats()
        final = benchlib.in_child(outcome, env)
    fake_busy = stats.pop("busy_seconds")
    requests_made = sum(stats.values())
    waiting = requests_made * LATENCY
    idle = sum(w["idle"] for w in workers)
    worker_time = sum(w["wall"] for w in workers) - idle
    worker_cpu = sum(w["cpu"] for w in workers)
    cpu_wait = sum(w["cpu_wait"] for w in workers)
    http_wall = sum(w["http"] for w in workers)
    sql_wall = sum(w["sql"] for w in workers)
    overhead = (worker_time - waiting) / waiting
    overhead_measured = (worker_time - fake_busy) / fake_busy
    synthesis = median([w["synthesis"] for w in workers])
    narration = synthesis * jobs
    overhead_without_speech = (worker_time - narration - waiting) / waiting
    succeeded = final["jobs"].get("succeeded", 0)
    lost = jobs - succeeded
    report.table(
        f"{jobs} avatar jobs, {WORKERS} worker processes, PostgreSQL, fake latency {LATENCY * 1000:.0f} ms",
        ["figure", "value"],
        [
            ["wall time (s)", wall],
            ["fake-server requests", f"{requests_made} {stats}"],
            ["requests per job", requests_made / jobs],
            ["worker loop idle sleeps, not counted (s)", idle],
            ["worker busy time, all workers (s)", worker_time],
            ["of which waiting on the fake (requests x latency, s)", waiting],
            ["the fake's own measured time for those requests (s)", fake_busy],
            ["of which narration synthesis (espeak, s)", narration],
            ["per job: worker busy time (ms)", worker_time / jobs * 1000],
            ["per job: worker CPU time (ms)", worker_cpu / jobs * 1000],
            ["per job: worker runnable, waiting for a CPU (schedstat, ms)", cpu_wait / jobs * 1000],
            ["per job: provider latency (ms)", waiting / jobs * 1000],
            ["per job: the fake's measured time (ms)", fake_busy / jobs * 1000],
            ["per job: narration synthesis (ms)", synthesis * 1000],
            ["per job: in HTTP sends (requests' Session.send, ms)", http_wall / jobs * 1000],
            ["per job: in SQL statements (from the ORM's cursor down, ms)", sql_wall / jobs * 1000],
            ["per job: everything else (ms)", (worker_time - http_wall - sql_wall) / jobs * 1000],
            [
                "SQL statements per task step (queue's + ours; BEGIN/COMMIT and health checks not counted)",
                sum(w["statements"] for w in workers) / max(1, sum(w["tasks"] for w in workers)),
            ],
            ["overhead over provider latency (requests x latency)", f"{overhead * 100:.1f} %"],
            ["overhead without the narration synthesis", f"{overhead_without_speech * 100:.1f} %"],
            ["overhead over the fake's measured time", f"{overhead_measured * 100:.1f} %"],
            ["jobs by status", final["jobs"]],
            ["queue tasks by status", final["tasks"]],
        ],
    )
    rss_rows = []
    for i, w in enumerate(workers):
        series = " ".join(f"{rss:.0f}" for _, rss in w["samples"])
        rss_rows.append([i, w["tasks"], w["start_rss"], series, w["end_rss"], w["end_rss"] - w["start_rss"]])
    report.table(
        f"Worker RSS (MB), sampled every {sample_every} task steps per worker (~100 jobs across the workers)",
        ["worker", "task steps", "RSS at start", "samples", "RSS at end", "growth"],
        rss_rows,
    )
    growth = max(w["end_rss"] - (w["samples"][0][1] if w["samples"] else w["start_rss"]) for w in workers)
    report.check(
        "orchestration overhead over provider latency",
        f"< {TARGET_OVERHEAD * 100:g} %",
        f"{overhead * 100:.1f} % ({overhead_without_speech * 100:.1f} % without narration synthesis; "
        f"{overhead_measured * 100:.1f} % over the fake's measured time)",
        overhead < TARGET_OVERHEAD,
    )
    report.check("worker RSS flat (growth after the first sample)", "< 10 MB", f"{growth:.1f} MB", growth < 10)
    report.check("lost or failed jobs", "0", str(lost), lost == 0)
    return report


if __name__ == "__main__":
    benchlib.main(run)
