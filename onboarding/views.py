"""The persona wizard. Each view: login required, persona through the ownership helper, a form,
one service call, then the page or the section htmx asked for. Without htmx, forms post normally
and redirect back to the section (PRG); invalid forms re-render the page with their errors."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from media_pipeline.models import JobKind, MediaJob
from media_pipeline.ratelimit import RateLimited
from media_pipeline.uploads import upload_too_large_message
from onboarding import services
from onboarding.forms import ContentForm, PhotoForm, SentenceForm, TrainVoiceForm, VoiceSampleForm
from onboarding.models import OnboardingData
from personas.consent import consent_text
from personas.models import Capability, WritingPersona
from personas.selectors import current_persona, get_owned_or_404

PAGE = "onboarding/persona.html"
PREVIEW_PAGE = "onboarding/preview.html"


def _persona(request, persona_id: int) -> WritingPersona:
    return get_owned_or_404(WritingPersona.objects.select_related("user__subscription"), request.user, pk=persona_id)


def _section_url(persona: WritingPersona, section: str) -> str:
    return reverse("onboarding:persona", args=[persona.pk]) + f"#{section}"


def _voice_form(persona, panel, data=None, files=None) -> VoiceSampleForm:
    return VoiceSampleForm(
        data,
        files,
        tier_allows=panel.state != "locked",
        needs_consent=panel.needs_consent,
        cost_to_confirm=panel.cost_to_confirm,
    )


def _photo_form(persona, panel, data=None, files=None) -> PhotoForm:
    return PhotoForm(data, files, tier_allows=panel.state != "locked", needs_consent=panel.needs_consent)


def _voice_context(persona: WritingPersona, voice) -> dict:
    return {
        "voice": voice,
        "voice_form": _voice_form(persona, voice),
        "sentence_form": SentenceForm(),
        "voice_consent": consent_text(Capability.VOICE),
        "script": services.READ_ALOUD_SCRIPT,
    }


def _avatar_context(persona: WritingPersona, avatar) -> dict:
    return {
        "avatar": avatar,
        "photo_form": _photo_form(persona, avatar),
        "avatar_consent": consent_text(Capability.AVATAR),
    }


def _style_context(persona: WritingPersona) -> dict:
    return {"style": services.style_panel(persona), "adaptations": persona.adaptations.all()}


def _page_context(request, persona: WritingPersona, **overrides) -> dict:
    voice, avatar = services.media_panels(persona)
    context = {"persona": persona, **_style_context(persona)}
    return context | _voice_context(persona, voice) | _avatar_context(persona, avatar) | overrides


def _section_context(persona: WritingPersona, section: str, **overrides) -> dict:
    """What one step-6 section shows (each section reads only its own panel)."""
    if section == "style":
        context = _style_context(persona)
    elif section == "voice":
        context = _voice_context(persona, services.voice_panel(persona))
    else:
        context = _avatar_context(persona, services.avatar_panel(persona))
    return {"persona": persona, **context} | overrides


def _render_section(request, persona: WritingPersona, section: str, **overrides):
    """The whole step-6 page, or only `section` (and only its data) when htmx asked for it."""
    if request.htmx:
        return render(request, f"{PAGE}#{section}", _section_context(persona, section, **overrides))
    return render(request, PAGE, _page_context(request, persona, **overrides))


def _after_action(request, persona: WritingPersona, section: str):
    if request.htmx:
        return _render_section(request, persona, section)
    return redirect(_section_url(persona, section))


def _refused(request, persona: WritingPersona, section: str, message: str):
    return _render_section(request, persona, section, **{f"{section}_error": message})


# --- Entry points and steps 1-5 -------------------------------------------------------------


@login_required
@require_GET
def start(request):
    if not OnboardingData.objects.filter(user=request.user).exists():
        return redirect("onboarding:content")
    return redirect("onboarding:current_persona")


@login_required
def content(request):
    data = OnboardingData.objects.filter(user=request.user).first()
    initial = {}
    if data:
        initial = {
            "brand_name": data.brand_name,
            "website_url": data.website_url,
            "writing_samples": data.writing_samples,
            "platforms": data.platforms,
        }
    form = ContentForm(request.POST or None, initial=initial, user=request.user)
    if request.method == "POST" and form.is_valid():
        persona = services.save_content(
            user=request.user,
            brand_name=form.cleaned_data["brand_name"],
            website_url=form.cleaned_data["website_url"],
            website_text=form.cleaned_data["website_text"],
            writing_samples=form.cleaned_data["writing_samples"],
            platforms=form.cleaned_data["platforms"],
        )
        return redirect(_section_url(persona, "style"))
    return render(request, "onboarding/content.html", {"form": form})


@login_required
@require_GET
def current_persona_page(request):
    """Stable address for the dashboard: /onboarding/persona/#voice lands on the right section
    (browsers keep the fragment across the redirect)."""
    persona = current_persona(request.user)
    if persona is None:
        return redirect("onboarding:content")
    return redirect("onboarding:persona", persona.pk)


@login_required
@require_GET
def current_preview(request):
    persona = current_persona(request.user)
    if persona is None:
        return redirect("onboarding:content")
    return redirect("onboarding:preview", persona.pk)


# --- Step 6 -----------------------------------------------------------------------------------


@login_required
@require_GET
def persona_page(request, persona_id: int):
    return render(request, PAGE, _page_context(request, _persona(request, persona_id)))


@login_required
@require_GET
def section(request, persona_id: int, section: str):
    """The polling target of each section (and a full page without htmx)."""
    return _render_section(request, _persona(request, persona_id), section)


@login_required
@require_POST
def analyse_style(request, persona_id: int):
    persona = _persona(request, persona_id)
    try:
        services.reanalyse_style(persona=persona)
    except services.PipelineError as exc:
        return _refused(request, persona, "style", str(exc))
    return _after_action(request, persona, "style")


@login_required
@require_POST
def upload_voice_sample(request, persona_id: int):
    persona = _persona(request, persona_id)
    panel = services.voice_panel(persona)
    if _upload_too_large(request):
        return _refused(request, persona, "voice", upload_too_large_message())
    form = _voice_form(persona, panel, request.POST, request.FILES)
    if not form.is_valid():
        return _render_section(request, persona, "voice", voice_form=form)
    try:
        services.upload_voice_sample(persona=persona, sample=form.cleaned_data["sample"], request=request)
    except (services.PipelineError, RateLimited) as exc:
        return _refused(request, persona, "voice", str(exc))
    return _after_action(request, persona, "voice")


def _upload_too_large(request) -> bool:
    request.FILES  # noqa: B018 - parsing the body is what sets the flag
    return getattr(request, "upload_too_large", False)


def _media_action(request, persona_id: int, section: str, action, needs_tier: str):
    """Run one service call for a section; its refusal is shown in the section, nothing changes."""
    persona = _persona(request, persona_id)
    if not persona.user.subscription.features[needs_tier]:
        return _refused(request, persona, section, "This is not part of your plan.")
    try:
        action(persona)
    except (services.PipelineError, RateLimited) as exc:
        return _refused(request, persona, section, str(exc))
    return _after_action(request, persona, section)


@login_required
@require_POST
def train_voice(request, persona_id: int, job_id: int):
    check_job = get_owned_or_404(MediaJob, request.user, pk=job_id, persona_id=persona_id, kind=JobKind.SAMPLE_CHECK)
    form = TrainVoiceForm(request.POST)
    accept = form.is_valid() and form.cleaned_data["accept_warnings"]
    return _media_action(
        request,
        persona_id,
        "voice",
        lambda p: services.train_voice(persona=p, check_job=check_job, accept_warnings=accept),
        "voice",
    )


@login_required
@require_POST
def retry_voice(request, persona_id: int):
    return _media_action(request, persona_id, "voice", lambda p: services.retry_voice(persona=p), "voice")


@login_required
@require_POST
def approve_voice(request, persona_id: int):
    return _media_action(request, persona_id, "voice", lambda p: services.pipeline.approve_voice(persona=p), "voice")


@login_required
@require_POST
def discard_voice_candidate(request, persona_id: int):
    return _media_action(
        request, persona_id, "voice", lambda p: services.pipeline.discard_voice_candidate(persona=p), "voice"
    )


@login_required
@require_POST
def cancel_voice(request, persona_id: int):
    return _media_action(
        request, persona_id, "voice", lambda p: services.cancel_active(persona=p, kind=JobKind.VOICE_CLONE), "voice"
    )


@login_required
@require_POST
def skip_voice(request, persona_id: int):
    persona = _persona(request, persona_id)
    services.skip(persona=persona, capability=Capability.VOICE)
    return _after_action(request, persona, "voice")


@login_required
@require_POST
def hear_sentence(request, persona_id: int):
    persona = _persona(request, persona_id)
    form = SentenceForm(request.POST)
    if not form.is_valid():
        return _render_section(request, persona, "voice", sentence_form=form)
    try:
        services.hear_sentence(persona=persona, text=form.cleaned_data["text"])
    except (services.PipelineError, RateLimited) as exc:
        return _refused(request, persona, "voice", str(exc))
    return _after_action(request, persona, "voice")


@login_required
@require_POST
def upload_photo(request, persona_id: int):
    persona = _persona(request, persona_id)
    panel = services.avatar_panel(persona)
    if _upload_too_large(request):
        return _refused(request, persona, "avatar", upload_too_large_message())
    form = _photo_form(persona, panel, request.POST, request.FILES)
    if not form.is_valid():
        return _render_section(request, persona, "avatar", photo_form=form)
    try:
        services.upload_photo(persona=persona, photo=form.cleaned_data["photo"], request=request)
    except (services.PipelineError, RateLimited) as exc:
        return _refused(request, persona, "avatar", str(exc))
    return _after_action(request, persona, "avatar")


@login_required
@require_POST
def create_avatar(request, persona_id: int, job_id: int):
    check_job = get_owned_or_404(MediaJob, request.user, pk=job_id, persona_id=persona_id, kind=JobKind.PHOTO_CHECK)
    return _media_action(
        request, persona_id, "avatar", lambda p: services.create_avatar(persona=p, check_job=check_job), "avatar"
    )


@login_required
@require_POST
def recreate_avatar(request, persona_id: int):
    return _media_action(request, persona_id, "avatar", lambda p: services.recreate_avatar(persona=p), "avatar")


@login_required
@require_POST
def approve_avatar(request, persona_id: int):
    return _media_action(request, persona_id, "avatar", lambda p: services.pipeline.approve_avatar(persona=p), "avatar")


@login_required
@require_POST
def discard_avatar_candidate(request, persona_id: int):
    return _media_action(
        request, persona_id, "avatar", lambda p: services.pipeline.discard_avatar_candidate(persona=p), "avatar"
    )


@login_required
@require_POST
def cancel_avatar(request, persona_id: int):
    return _media_action(
        request,
        persona_id,
        "avatar",
        lambda p: services.cancel_active(persona=p, kind=JobKind.AVATAR_CREATE),
        "avatar",
    )


@login_required
@require_POST
def skip_avatar(request, persona_id: int):
    persona = _persona(request, persona_id)
    services.skip(persona=persona, capability=Capability.AVATAR)
    return _after_action(request, persona, "avatar")


# --- Step 7 -----------------------------------------------------------------------------------


def _preview_context(persona: WritingPersona, **extra) -> dict:
    voice, avatar = services.media_panels(persona)
    return {
        "persona": persona,
        "adaptations": persona.adaptations.all(),
        "voice": voice,
        "avatar": avatar,
        "costs": services.persona_costs(persona),
        "blockers": services.approval_blockers(persona, voice, avatar),
    } | extra


@login_required
@require_GET
def preview(request, persona_id: int):
    return render(request, PREVIEW_PAGE, _preview_context(_persona(request, persona_id)))


@login_required
@require_POST
def approve_persona(request, persona_id: int):
    persona = _persona(request, persona_id)
    try:
        services.approve_persona(persona=persona)
    except services.PipelineError as exc:
        return render(request, PREVIEW_PAGE, _preview_context(persona, approve_error=str(exc)))
    return redirect("personas:dashboard")
