"""Steps 1-5 stand-in (content, website fetch, analysis in the worker) and step 7 (preview,
costs, approval)."""

import socket
from decimal import Decimal

import pytest
import requests
import responses
from django.urls import reverse
from django.utils import timezone

from media_pipeline.models import UsageRecord
from onboarding.models import OnboardingData
from personas.models import Tier, WritingPersona
from tests.conftest import make_user
from tests.onboarding.conftest import SAMPLES, url

pytestmark = pytest.mark.django_db
CONTENT = reverse("onboarding:content")
SITE = "https://owner.example.com/about"


@pytest.fixture
def public_dns(monkeypatch):
    """The website check resolves names; tests answer with a public address, no network."""
    answers = {"owner.example.com": "93.184.215.14", "intranet.example.com": "10.0.0.5"}

    def fake(host, *args, **kwargs):
        if host[0].isdigit():  # an address literal resolves to itself
            answers[host] = host
        if host not in answers:
            raise socket.gaierror("unknown host")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], 0))]

    monkeypatch.setattr("onboarding.website.socket.getaddrinfo", fake)


def content(client, django_capture_on_commit_callbacks, **fields):
    data = {"brand_name": "Owner Co", "writing_samples": SAMPLES, "platforms": ["linkedin", "email"], **fields}
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(CONTENT, data)


def test_content_is_saved_and_analysed_in_the_worker(owner_client, owner, django_capture_on_commit_callbacks, run_jobs):
    response = content(owner_client, django_capture_on_commit_callbacks)
    persona = WritingPersona.objects.get(user=owner)
    assert response.url == url("persona", persona) + "#style"
    data = OnboardingData.objects.get(user=owner)
    assert data.platforms == ["linkedin", "email"] and data.website_text == ""
    page = owner_client.get(url("style", persona), headers={"HX-Request": "true"}).content.decode()
    assert 'data-state="analysing"' in page and 'hx-trigger="every 2s"' in page
    run_jobs()
    page = owner_client.get(url("style", persona), headers={"HX-Request": "true"}).content.decode()
    assert 'data-state="done"' in page and 'hx-trigger="every 2s"' not in page
    persona.refresh_from_db()
    assert persona.tone and persona.readability_grade is not None
    assert set(persona.adaptations.values_list("platform", flat=True)) == {"linkedin", "email"}
    for label in ("Tone", "Complexity", "Engagement", "Sentences", "Favourite phrases", "Hashtags", "LinkedIn"):
        assert label in page


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"brand_name": ""}, "This field is required."),
        ({"writing_samples": "Too short to say anything."}, "Your samples have 5 words; paste at least 150"),
        ({"platforms": []}, "Choose at least one platform."),
        ({"platforms": ["myspace"]}, "Select a valid choice."),
        ({"website_url": "not a url at all"}, "Enter a valid URL."),
    ],
)
def test_content_errors(owner_client, owner, django_capture_on_commit_callbacks, fields, message):
    response = content(owner_client, django_capture_on_commit_callbacks, **fields)
    assert response.status_code == 200 and message in response.content.decode()
    assert not OnboardingData.objects.exists() and not WritingPersona.objects.exists()


@responses.activate
def test_the_website_text_is_fetched_and_kept(owner_client, owner, django_capture_on_commit_callbacks, public_dns):
    html = (
        "<html><head><title>x</title><style>p{}</style></head><body><nav>Home</nav>"
        "<script>var hidden = 1;</script><h1>About Owner Co</h1><p>We help founders write.</p></body></html>"
    )
    responses.get(SITE, body=html, content_type="text/html; charset=utf-8")
    content(owner_client, django_capture_on_commit_callbacks, website_url=SITE)
    text = OnboardingData.objects.get(user=owner).website_text
    assert "About Owner Co" in text and "We help founders write." in text
    assert "hidden" not in text and "p{}" not in text


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ({"body": requests.ConnectionError("refused")}, "We could not reach your website."),
        ({"body": requests.ReadTimeout("slow")}, "Your website took too long to answer."),
        ({"status": 404, "body": "missing"}, "Your website answered with an error (HTTP 404)."),
        ({"body": b"%PDF-1.4", "content_type": "application/pdf"}, "That address is not a web page."),
        ({"status": 302, "headers": {"Location": "http://intranet.example.com/"}}, "is not a public website"),
    ],
)
@responses.activate
def test_an_unreachable_website_has_a_clear_message(
    owner_client, owner, django_capture_on_commit_callbacks, public_dns, reply, message
):
    responses.get(SITE, **reply)
    response = content(owner_client, django_capture_on_commit_callbacks, website_url=SITE)
    assert message in response.content.decode()
    assert not OnboardingData.objects.exists()


@responses.activate
def test_website_fetches_are_rate_limited_per_user(
    owner_client, owner, django_capture_on_commit_callbacks, public_dns, settings
):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "website_fetch": 2}
    responses.get(SITE, body="<p>Hello</p>", content_type="text/html")
    for _ in range(2):
        content(owner_client, django_capture_on_commit_callbacks, website_url=SITE)
    OnboardingData.objects.all().delete()
    WritingPersona.objects.all().delete()
    response = content(owner_client, django_capture_on_commit_callbacks, website_url=SITE)
    assert "You have reached the limit of 2 website requests per hour." in response.content.decode()
    assert len(responses.calls) == 2 and not OnboardingData.objects.exists()
    # Without a website address nothing is fetched, so the limit does not stand in the way.
    content(owner_client, django_capture_on_commit_callbacks)
    assert OnboardingData.objects.filter(user=owner).exists()


def test_unknown_and_private_hosts_are_not_fetched(owner_client, django_capture_on_commit_callbacks, public_dns):
    response = content(owner_client, django_capture_on_commit_callbacks, website_url="https://nowhere.example.org/")
    assert "We could not find nowhere.example.org." in response.content.decode()
    response = content(owner_client, django_capture_on_commit_callbacks, website_url="http://127.0.0.1:8000/admin/")
    assert "is not a public website address" in response.content.decode()


def test_the_content_form_is_prefilled_when_coming_back(owner_client, persona):
    page = owner_client.get(CONTENT).content.decode()
    assert "Owner Co" in page and "small businesses" in page


def test_a_failed_analysis_shows_why_and_can_be_retried(
    owner_client, persona, run_jobs, django_capture_on_commit_callbacks
):
    OnboardingData.objects.filter(user=persona.user).update(writing_samples="🙂 🙂 🙂")
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(url("analyse_style", persona))
    run_jobs()
    page = owner_client.get(url("style", persona), headers={"HX-Request": "true"}).content.decode()
    assert 'data-state="failed"' in page and "There is not enough text to analyse." in page
    assert "Try again" in page


# --- Step 7 ------------------------------------------------------------------------------------


def usage(persona, kind, cost, key, provider="minimax"):
    UsageRecord.objects.create(
        user=persona.user, persona=persona, kind=kind, provider=provider, cost_usd=Decimal(cost), idempotency_key=key
    )


def costs_section(page: str) -> str:
    return page.split('id="costs"')[1].split("</section>")[0]


def test_preview_lists_costs_and_what_is_missing(owner_client, persona):
    usage(persona, "voice_synthesis", "0.10", "a")
    usage(persona, "voice_synthesis", "0.05", "b")
    UsageRecord.objects.create(user=persona.user, kind="other", provider="x", cost_usd=5, idempotency_key="c")
    page = owner_client.get(url("preview", persona)).content.decode()
    assert "data-total-cost>$0.15<" in page and "<td>Speech</td>" in page
    assert "Approve or skip your voice first." in page and "Approve or skip your avatar first." in page
    response = owner_client.post(url("approve", persona))
    assert response.status_code == 200 and "Approve or skip your voice first." in response.content.decode()
    persona.refresh_from_db()
    assert persona.approved_at is None


@pytest.mark.parametrize("tier", [Tier.PRO, Tier.ENTERPRISE])
def test_voice_cloning_is_shown_as_included_on_pro_and_enterprise(client, tier):
    user = make_user("paid", tier)
    persona = WritingPersona.objects.create(user=user, name="Paid", analysed_at=timezone.now())
    usage(persona, "voice_clone", "0.75", "clone")
    usage(persona, "avatar_video", "0.30", "video", provider="wavespeed")
    client.force_login(user)
    costs = costs_section(client.get(url("preview", persona)).content.decode())
    plan = tier.label
    assert f"<td>$0.75 — included in your {plan} plan</td>" in costs
    assert "<td>Avatar video</td><td>wavespeed</td><td>$0.30</td>" in costs
    assert "Total you pay: <span data-total-cost>$0.30</span>" in costs
    assert f"(plus $0.75 included in your {plan} plan)" in costs


def test_basic_pays_for_voice_cloning(client):
    user = make_user("basic", Tier.BASIC)
    persona = WritingPersona.objects.create(user=user, name="Basic", analysed_at=timezone.now())
    usage(persona, "voice_clone", "0.75", "clone")
    client.force_login(user)
    costs = costs_section(client.get(url("preview", persona)).content.decode())
    assert "<td>Voice cloning</td><td>minimax</td><td>$0.75</td>" in costs
    assert "Total you pay: <span data-total-cost>$0.75</span>" in costs
    assert "included" not in costs


def test_approving_the_persona_stores_the_time_and_goes_to_the_dashboard(owner_client, persona):
    persona.voice_skipped_at = persona.avatar_skipped_at = timezone.now()
    persona.save()
    page = owner_client.get(url("preview", persona)).content.decode()
    assert "Skipped" in page and "disabled" not in page.split('id="approve"')[1]
    response = owner_client.post(url("approve", persona))
    assert response.url == reverse("personas:dashboard")
    persona.refresh_from_db()
    assert persona.approved_at is not None


def test_free_tier_can_approve_with_writing_style_only(client):
    user = make_user("free", Tier.FREE)
    OnboardingData.objects.create(user=user, brand_name="F", writing_samples=SAMPLES, platforms=["blog"])
    persona = WritingPersona.objects.create(user=user, name="F", analysed_at=timezone.now())
    client.force_login(user)
    assert "Not in your plan" in client.get(url("preview", persona)).content.decode()
    assert client.post(url("approve", persona)).url == reverse("personas:dashboard")


def test_an_unanalysed_persona_cannot_be_approved(owner_client, persona):
    WritingPersona.objects.filter(pk=persona.pk).update(
        analysed_at=None, voice_skipped_at=timezone.now(), avatar_skipped_at=timezone.now()
    )
    response = owner_client.post(url("approve", persona))
    assert "Your writing style has not been analysed yet." in response.content.decode()
