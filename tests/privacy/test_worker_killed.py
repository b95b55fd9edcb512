"""A real `db_worker` process is killed (SIGKILL) in the middle of a render: the sweeper hands
the job to a new worker, which finishes it with each step charged once and no stray files."""

import os
import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest

from media_pipeline import services as pipeline
from media_pipeline.models import JobStatus, MediaAsset, MediaJob, UsageRecord
from personas import studio
from personas.models import Tier
from tests.conftest import make_user, start_db_worker
from tests.personas.conftest import make_persona

pytestmark = pytest.mark.django_db(transaction=True)

SCENES = tuple(
    f"Scene {n}. The keeper climbed the stairs again, counted the ships on the grey water and wrote "
    f"each name in the old book, because somebody had to remember them all."
    for n in range(1, 7)
)


def start_worker(media_root: Path) -> subprocess.Popen:
    return start_db_worker(media_root, interval=0.1, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(condition, timeout: float = 300):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_killed_worker_job_is_finished_by_another_without_double_charges(private_media_root):
    persona = make_persona(make_user("writer", Tier.PRO), voice=True, avatar=True)
    content = studio.generate_content_with_persona(
        user=persona.user, content_type="story", scenes=SCENES, title="The keeper", make_video=True
    )
    job = content.job

    first = start_worker(private_media_root)
    try:
        # Kill it while it renders the video: the narration is made and charged, the video is not.
        def rendering_video():
            job.refresh_from_db()
            return job.status == JobStatus.RUNNING and "audio_asset" in job.result

        wait_for(rendering_video, timeout=120)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and "video_asset" not in job.result  # nobody is working on it now
    charged_before = set(UsageRecord.objects.filter(job=job).values_list("idempotency_key", flat=True))
    assert charged_before

    # Once the dead worker's lease has run out, the sweeper re-queues the job.
    assert pipeline.sweep_jobs(now=job.lease_expires_at - timedelta(seconds=1))["requeued"] == 0
    assert pipeline.sweep_jobs(now=job.lease_expires_at + timedelta(seconds=1))["requeued"] == 1

    second = start_worker(private_media_root)
    try:
        wait_for(lambda: MediaJob.objects.get(pk=job.pk).status in (JobStatus.SUCCEEDED, JobStatus.FAILED))
    finally:
        second.terminate()
        second.wait(timeout=20)

    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    usage = list(UsageRecord.objects.filter(job=job))
    keys = [u.idempotency_key for u in usage]
    assert len(keys) == len(set(keys))  # nothing charged twice
    assert charged_before <= set(keys)  # the first worker's charges were kept, not redone
    assert sorted(u.kind for u in usage) == ["avatar_video"] + ["voice_synthesis"] * len(SCENES)

    assets = MediaAsset.objects.filter(job=job)
    titles = sorted(a.title for a in assets)
    assert titles.count("The keeper · narration") == 1
    assert titles.count("The keeper · AI-generated video") == 1
    # Every file on disk belongs to an asset or the persona: the killed step left nothing behind.
    on_disk = {str(p.relative_to(private_media_root)) for p in private_media_root.rglob("*") if p.is_file()}
    persona.refresh_from_db()
    owned = {a.file.name for a in MediaAsset.objects.all()}
    owned |= {persona.voice_preview.name, persona.avatar_portrait.name, persona.avatar_image.name}
    assert on_disk <= owned, on_disk - owned
