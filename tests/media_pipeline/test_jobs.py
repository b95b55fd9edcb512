from decimal import Decimal

import pytest
from django.db import IntegrityError
from django.utils import timezone

from media_pipeline import services
from media_pipeline.models import JobKind, JobStatus, MediaJob, UsageRecord
from personas.models import WritingPersona


@pytest.fixture
def persona(owner):
    return WritingPersona.objects.create(user=owner, name="Owner persona")


def make_job(persona, **fields):
    defaults = {"user": persona.user, "persona": persona, "kind": JobKind.RENDER, "provider": "offline"}
    return MediaJob.objects.create(**{**defaults, **fields})


def test_usage_is_recorded_once_per_idempotency_key(persona):
    job = make_job(persona)
    for _ in range(3):
        services.record_usage(
            user=persona.user,
            persona=persona,
            job=job,
            kind="voice_clone",
            provider="minimax",
            media_seconds=0,
            cost_usd=Decimal("0.75"),
            idempotency_key=f"job:{job.pk}:voice_clone",
        )
    assert UsageRecord.objects.count() == 1
    job.refresh_from_db()
    assert job.cost_usd == Decimal("0.75")


def test_usage_key_is_unique_in_the_database(persona):
    UsageRecord.objects.create(user=persona.user, kind="x", provider="p", idempotency_key="k")
    with pytest.raises(IntegrityError):
        UsageRecord.objects.create(user=persona.user, kind="x", provider="p", idempotency_key="k")


def test_a_job_is_claimed_by_one_worker_only(persona):
    job = make_job(persona)
    first = services.claim_job(job.pk)
    assert first is not None and first.status == JobStatus.RUNNING and first.attempts == 1
    assert services.claim_job(job.pk) is None


def test_sweeper_requeues_a_dead_workers_job_and_fails_overdue_ones(persona, django_capture_on_commit_callbacks):
    past = timezone.now() - timezone.timedelta(minutes=5)
    dead = make_job(
        persona, status=JobStatus.RUNNING, lease_expires_at=past, deadline=timezone.now() + timezone.timedelta(hours=1)
    )
    overdue = make_job(persona, status=JobStatus.WAITING_PROVIDER, deadline=past, heartbeat_at=past)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert services.sweep_jobs() == {"requeued": 1, "failed": 1}
    assert len(callbacks) == 1
    dead.refresh_from_db()
    overdue.refresh_from_db()
    assert dead.status == JobStatus.QUEUED
    assert overdue.status == JobStatus.FAILED and "too long" in overdue.error
    # The re-queued job can be claimed again by a live worker.
    assert services.claim_job(dead.pk).attempts == 1


def test_costs_follow_the_price_table():
    assert services.voice_clone_cost("minimax") == Decimal("0.75")
    assert services.voice_clone_cost("offline") == 0
    assert services.synthesis_cost("minimax", 90) == Decimal("0.0300")
    assert services.avatar_cost("wavespeed", 3) == Decimal("0.15")  # 5 s minimum
    assert services.avatar_cost("wavespeed", 12, "720p") == Decimal("0.72")  # billed per second
    assert services.avatar_cost("wavespeed", 7.2) == Decimal("0.24")  # 8 whole seconds at $0.03
    assert services.avatar_cost("offline", 60) == 0


def test_generated_voice_ids_follow_minimax_rules(persona):
    import re

    for _ in range(50):
        voice_id = services.generate_voice_id(persona)
        assert 8 <= len(voice_id) <= 256
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*[A-Za-z0-9]", voice_id)
        assert re.search(r"\d", voice_id)


def test_claiming_returns_the_row_and_keeps_started_at_of_earlier_attempts(persona):
    started = timezone.now() - timezone.timedelta(minutes=3)
    job = make_job(persona, status=JobStatus.WAITING_PROVIDER, attempts=2, started_at=started, provider_job_id="p1")
    claimed = services.claim_job(job.pk)
    assert claimed.pk == job.pk and claimed.provider_job_id == "p1"
    # A poll of a waiting job is not a new try: attempts stays.
    assert claimed.status == JobStatus.RUNNING and claimed.attempts == 2 and claimed.started_at == started
    assert claimed.lease_expires_at > timezone.now() and claimed.heartbeat_at is not None
    job.refresh_from_db()
    assert (job.status, job.attempts, job.lease_expires_at) == (claimed.status, 2, claimed.lease_expires_at)


def test_a_running_job_with_a_live_lease_is_not_claimed_but_an_expired_one_is(persona):
    soon = timezone.now() + timezone.timedelta(minutes=1)
    live = make_job(persona, status=JobStatus.RUNNING, lease_expires_at=soon)
    expired = make_job(
        persona, status=JobStatus.RUNNING, lease_expires_at=timezone.now() - timezone.timedelta(seconds=1)
    )
    finished = make_job(persona, status=JobStatus.SUCCEEDED)
    assert services.claim_job(live.pk) is None
    assert services.claim_job(finished.pk) is None
    assert services.claim_job(expired.pk).status == JobStatus.RUNNING


def test_load_owner_reads_persona_user_and_subscription_in_one_query(persona, django_assert_num_queries):
    job = services.claim_job(make_job(persona).pk)
    with django_assert_num_queries(1):
        services.load_owner(job)
        assert job.persona == persona and job.user.subscription.tier == persona.user.subscription.tier


def test_a_heartbeat_right_after_the_claim_is_not_written_unless_it_lengthens_the_lease(
    persona, django_assert_num_queries
):
    job = services.claim_job(make_job(persona).pk)
    with django_assert_num_queries(0):
        services.heartbeat(job, 30)
    assert job.progress == 30
    with django_assert_num_queries(1):
        services.heartbeat(job, lease_seconds=3600)
    job.refresh_from_db()
    assert job.progress == 30 and job.lease_expires_at > timezone.now() + timezone.timedelta(minutes=50)


def test_a_late_heartbeat_renews_the_lease(persona):
    past = timezone.now() - timezone.timedelta(seconds=30)
    job = make_job(
        persona, status=JobStatus.RUNNING, heartbeat_at=past, lease_expires_at=past + timezone.timedelta(minutes=2)
    )
    services.heartbeat(job, 50)
    job.refresh_from_db()
    assert job.heartbeat_at > past and job.progress == 50


def test_usage_is_recorded_once_inside_a_transaction_too(persona):
    from django.db import transaction

    job = make_job(persona)
    key = f"job:{job.pk}:avatar_video"
    with transaction.atomic():
        for _ in range(2):
            record = services.record_usage(
                user=persona.user,
                persona=persona,
                job=job,
                kind="avatar_video",
                provider="wavespeed",
                media_seconds=4,
                cost_usd=Decimal("0.15"),
                idempotency_key=key,
            )
        assert record.idempotency_key == key
    assert UsageRecord.objects.filter(idempotency_key=key).count() == 1
    job.refresh_from_db()
    assert job.cost_usd == Decimal("0.15") and job.media_seconds == 4


def test_a_cancelled_job_is_not_overwritten_by_its_worker(persona, django_capture_on_commit_callbacks):
    job = services.claim_job(make_job(persona).pk)
    assert services.cancel_job(MediaJob.objects.get(pk=job.pk))
    with pytest.raises(services.JobLost):
        services.succeed_job(job, done=True)
    with pytest.raises(services.JobLost):
        services.wait_for_provider(job, progress=50)
    with django_capture_on_commit_callbacks() as enqueued:
        assert services.retry_later(job, "busy") is False
    assert services.fail_job(job, "crashed") is False
    assert not enqueued
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.error == "" and job.result == {}


def test_a_job_failed_by_the_sweeper_at_its_deadline_stays_failed(persona):
    job = services.claim_job(make_job(persona, deadline=timezone.now() + timezone.timedelta(minutes=1)).pk)
    assert services.sweep_jobs(now=timezone.now() + timezone.timedelta(minutes=2)) == {"requeued": 0, "failed": 1}
    with pytest.raises(services.JobLost):
        services.succeed_job(job)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "too long" in job.error


def test_a_worker_whose_lease_ran_out_cannot_finish_a_job_another_worker_claimed(persona):
    slow = services.claim_job(make_job(persona).pk)
    MediaJob.objects.filter(pk=slow.pk).update(lease_expires_at=timezone.now() - timezone.timedelta(seconds=1))
    services.sweep_jobs()
    fresh = services.claim_job(slow.pk)
    with pytest.raises(services.JobLost):
        services.succeed_job(slow)
    services.succeed_job(fresh)
    assert MediaJob.objects.get(pk=slow.pk).status == JobStatus.SUCCEEDED


def test_a_step_is_claimed_once_by_the_tasks_queued_for_it(persona):
    job = make_job(persona, status=JobStatus.WAITING_PROVIDER, step_token=3)
    assert services.claim_job(job.pk, 2) is None  # a task of an earlier step
    claimed = services.claim_job(job.pk, 3)
    assert claimed.step_token == 4
    MediaJob.objects.filter(pk=job.pk).update(status=JobStatus.WAITING_PROVIDER)
    assert services.claim_job(job.pk, 3) is None  # the same step queued twice


def test_polls_are_not_attempts_but_retries_are(persona, django_capture_on_commit_callbacks):
    job = make_job(persona)
    for _ in range(10):
        job = services.claim_job(job.pk)
        services.wait_for_provider(job, progress=50)
    assert job.attempts == 1
    job = services.claim_job(job.pk)
    assert services.retry_later(job, "busy")
    assert services.claim_job(job.pk).attempts == 2


def test_a_submitted_render_deadline_scales_with_media_seconds_and_model(settings, persona):
    settings.RENDER_SECONDS_PER_MEDIA_SECOND = {
        "wavespeed-ai/hunyuan-avatar": 20,
        "wavespeed-ai/infinitetalk": 30,
        "default": 2,
    }
    now = timezone.now()

    def extra_seconds(provider, seconds):
        job = make_job(persona, params={"avatar_provider": provider}, deadline=now)
        job = services.claim_job(job.pk)
        services.wait_for_provider(job, media_seconds=seconds, provider_job_id="p")
        job.refresh_from_db()
        return (job.deadline - now).total_seconds() - settings.JOB_DEADLINE_SECONDS["render"]

    assert extra_seconds("wavespeed", 60) == pytest.approx(20 * 60, abs=5)  # Hunyuan Avatar
    assert extra_seconds("wavespeed", 300) == pytest.approx(30 * 300, abs=5)  # InfiniteTalk
    assert extra_seconds("offline", 60) == pytest.approx(2 * 60, abs=5)
    # Never shortened: a job keeps a later deadline it already has.
    later = now + timezone.timedelta(days=1)
    job = services.claim_job(make_job(persona, params={"avatar_provider": "offline"}, deadline=later).pk)
    services.wait_for_provider(job, media_seconds=1)
    job.refresh_from_db()
    assert job.deadline == later


def _deferred_charge(job, persona, key: str, cost: str = "0.15", seconds: float = 4):
    return services.record_usage(
        user=persona.user,
        persona=persona,
        job=job,
        kind="avatar_video",
        provider="wavespeed",
        media_seconds=seconds,
        cost_usd=Decimal(cost),
        idempotency_key=key,
        defer_job_totals=True,
    )


def test_deferred_usage_totals_go_out_with_the_jobs_next_write_once(persona, django_assert_num_queries):
    job = services.claim_job(make_job(persona).pk)
    _deferred_charge(job, persona, "k1")
    _deferred_charge(job, persona, "k1")  # a repeat adds nothing
    _deferred_charge(job, persona, "k2", cost="0.05", seconds=1)
    with django_assert_num_queries(1):
        services.checkpoint_job(job, progress=50)
    services.succeed_job(job)
    job.refresh_from_db()
    assert job.cost_usd == Decimal("0.20") and job.media_seconds == 5 and job.progress == 100


def test_deferred_usage_totals_still_count_on_a_job_lost_meanwhile(persona):
    job = services.claim_job(make_job(persona).pk)
    _deferred_charge(job, persona, "k1")
    assert services.cancel_job(MediaJob.objects.get(pk=job.pk))
    with pytest.raises(services.JobLost):
        services.succeed_job(job)
    services.fail_job(job, "crashed")  # nothing pending any more: not added twice
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert job.cost_usd == Decimal("0.15") and job.media_seconds == 4
