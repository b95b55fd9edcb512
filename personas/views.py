"""Persona dashboard, settings, the content studio and the media library.

Each view: login required, objects through the ownership helper, a form, one service, then the
page or (for htmx) just the partial that changed. Every URL also works as a plain page."""

from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import push_url

from media_pipeline import services as pipeline
from media_pipeline.models import ACTIVE_JOB_STATUSES, JobKind, MediaAsset, MediaJob
from media_pipeline.ratelimit import RateLimited, check_rate_limit
from media_pipeline.services import PipelineError, cancel_job
from media_pipeline.uploads import upload_too_large_message
from personas import charts, services, studio
from personas.forms import (
    AvatarSettingsForm,
    BlogNarrationForm,
    ContentPreferenceForm,
    EmailVideoForm,
    LibraryFilterForm,
    LinkedInVideoForm,
    PlatformAdaptationFormSet,
    SceneFormSet,
    SignupForm,
    StoryForm,
    VoiceSettingsForm,
    platform_adaptation_initial,
)
from personas.models import Capability, WritingPersona
from personas.selectors import current_persona, get_owned_or_404


def home(request):
    if not request.user.is_authenticated:
        return redirect("login")
    persona = current_persona(request.user)
    if persona is None or persona.approved_at is None:
        return redirect("onboarding:start")
    return redirect("personas:dashboard")


def signup(request):
    if request.user.is_authenticated:
        return redirect("home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("home")
    return render(request, "registration/signup.html", {"form": form})


def persona_required(view):
    """Login required, and the user's current persona passed in (no persona: start the wizard)."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        persona = current_persona(request.user)
        if persona is None:
            messages.info(request, "Create your persona first.")
            return redirect("onboarding:start")
        return view(request, persona, *args, **kwargs)

    return wrapper


def _partial_or_page(request, template: str, partial: str, context: dict):
    name = f"{template}#{partial}" if request.htmx else template
    return render(request, name, context)


def wizard_url(persona: WritingPersona, section: str) -> str:
    try:
        url = reverse("onboarding:persona", args=[persona.pk])
    except NoReverseMatch:
        url = "/onboarding/persona/"
    return f"{url}#{section}"


# --- Dashboard -------------------------------------------------------------------------------


@require_GET
@persona_required
def dashboard(request, persona):
    subscription = persona.user.subscription
    # The polled live-status panel shows only the voice and avatar costs.
    stats = charts.capability_costs(persona) if request.htmx else charts.usage_statistics(persona)
    voice_provider = persona.speaking_voice_provider
    avatar_provider = persona.avatar_provider or settings.AVATAR_PROVIDER
    context = {
        "persona": persona,
        "active_jobs": list(persona.jobs.filter(status__in=ACTIVE_JOB_STATUSES).order_by("created_at")),
        "stats": stats,
        "features": subscription.features,
        "voice_price": _voice_price(voice_provider),
        "avatar_price": _avatar_price(avatar_provider),
        "retrain_voice_url": wizard_url(persona, "voice"),
        "recreate_avatar_url": wizard_url(persona, "avatar"),
    }
    if request.htmx:
        return render(request, "personas/dashboard.html#live-status", context)
    context.update(
        charts=charts.dashboard_charts(stats),
        tier=subscription.get_tier_display(),
        generations_used=studio.generations_this_month(request.user),
        generations_cap=subscription.features["monthly_generations"],
        adaptations=persona.adaptations.all(),
        recent_assets=studio.library_assets(request.user).exclude(kind="subtitles")[:4],
    )
    return render(request, "personas/dashboard.html", context)


def _voice_price(provider: str) -> str:
    per_minute = pipeline.synthesis_cost(provider, 60)
    if not per_minute:
        return f"Free ({provider} voice)"
    return f"{charts.money(pipeline.voice_clone_cost(provider))} to train, {charts.money(per_minute)} per minute"


def _avatar_price(provider: str) -> str:
    per_clip = pipeline.avatar_cost(provider, 5, studio.AVATAR_RESOLUTION)
    if not per_clip:
        return f"Free ({provider} renderer)"
    return f"{charts.money(per_clip)} per 5 seconds of video ({studio.AVATAR_RESOLUTION})"


# --- Settings --------------------------------------------------------------------------------


def _settings_context(persona: WritingPersona, **forms) -> dict:
    return {
        "persona": persona,
        "voice_form": forms.get("voice_form") or VoiceSettingsForm(instance=persona),
        "avatar_form": forms.get("avatar_form") or AvatarSettingsForm(instance=persona),
        "platform_formset": forms.get("platform_formset")
        or PlatformAdaptationFormSet(initial=platform_adaptation_initial(persona), prefix="platforms"),
        "content_form": forms.get("content_form") or ContentPreferenceForm(instance=persona),
        "saved": forms.get("saved", ""),
    }


def _settings_saved(request, persona: WritingPersona, section: str):
    if request.htmx:
        return render(request, f"personas/settings.html#{section}", _settings_context(persona, saved=section))
    messages.success(request, "Settings saved. Every new piece of content uses them.")
    return redirect(reverse("personas:settings") + f"#{section}")


def _settings_invalid(request, persona: WritingPersona, section: str, **forms):
    context = _settings_context(persona, **forms)
    return _partial_or_page(request, "personas/settings.html", section, context)


@require_GET
@persona_required
def settings_page(request, persona):
    return render(request, "personas/settings.html", _settings_context(persona))


@require_POST
@persona_required
def save_voice_settings(request, persona):
    form = VoiceSettingsForm(request.POST, instance=persona)
    if not form.is_valid():
        return _settings_invalid(request, persona, "voice-settings", voice_form=form)
    services.update_voice_settings(persona=persona, **form.cleaned_data)
    return _settings_saved(request, persona, "voice-settings")


@require_POST
@persona_required
def hear_voice_sample(request, persona):
    """Queue a short sample in the (unsaved) settings; the result plays on the settings page."""
    form = VoiceSettingsForm(request.POST, instance=persona)  # validated only, never saved here
    if form.is_valid():
        try:
            check_rate_limit(request.user, "generation")
            job = studio.request_voice_sample(persona=persona, voice_settings=form.cleaned_data)
        except (PipelineError, RateLimited) as exc:
            form.add_error(None, str(exc))
    if form.errors:
        if request.htmx:
            # htmx swaps the answer into the sample slot inside the card: only the errors go there.
            return render(request, "personas/settings.html#voice-sample-error", {"voice_form": form})
        return _settings_invalid(request, persona, "voice-settings", voice_form=form)
    if request.htmx:
        return render(request, "personas/studio/job.html#job-status", {"job": job, "compact": True})
    return redirect("personas:job", job_id=job.pk)


@require_POST
@persona_required
def save_avatar_settings(request, persona):
    refusal = ""
    uploaded = "background_image" in request.FILES  # parsing the body is what sets upload_too_large
    if getattr(request, "upload_too_large", False):
        # The upload handler stopped the file while it streamed in; nothing is saved.
        refusal = upload_too_large_message()
    elif uploaded:
        try:
            check_rate_limit(request.user, "upload")
        except RateLimited as exc:
            refusal = str(exc)
    if refusal:
        form = AvatarSettingsForm(request.POST, instance=persona)  # the image is never decoded
        form.add_error("background_image", refusal)
        return _settings_invalid(request, persona, "avatar-settings", avatar_form=form)
    form = AvatarSettingsForm(request.POST, request.FILES, instance=persona)
    if not form.is_valid():
        return _settings_invalid(request, persona, "avatar-settings", avatar_form=form)
    data = form.cleaned_data
    services.update_avatar_settings(
        persona=persona,
        background_image=data.pop("background_image"),
        remove_background_image=data.pop("remove_background_image"),
        **data,
    )
    return _settings_saved(request, persona, "avatar-settings")


@require_POST
@persona_required
def save_platform_settings(request, persona):
    formset = PlatformAdaptationFormSet(request.POST, prefix="platforms")
    if not formset.is_valid():
        return _settings_invalid(request, persona, "platform-settings", platform_formset=formset)
    services.save_platform_adaptations(persona=persona, adaptations=[f.cleaned_data for f in formset.forms])
    return _settings_saved(request, persona, "platform-settings")


@require_POST
@persona_required
def save_content_preference(request, persona):
    form = ContentPreferenceForm(request.POST, instance=persona)
    if not form.is_valid():
        return _settings_invalid(request, persona, "content-settings", content_form=form)
    services.update_content_preference(persona=persona, **form.cleaned_data)
    return _settings_saved(request, persona, "content-settings")


# --- Delete / opt out ------------------------------------------------------------------------

CAPABILITY_ACTIONS = ("delete", "opt-out", "opt-in")


def _run_capability_action(persona: WritingPersona, capability: str, action: str):
    if action == "delete":
        delete = services.delete_voice if capability == Capability.VOICE else services.delete_avatar
        return delete(persona=persona)
    if action == "opt-out":
        return services.opt_out(persona=persona, capability=capability)
    services.opt_in(persona=persona, capability=capability)
    return None


@require_http_methods(["GET", "POST"])
@persona_required
def capability_action(request, persona, capability: str, action: str):
    """GET asks for confirmation; POST deletes, opts out or opts back in."""
    if request.method == "GET":
        context = {"persona": persona, "capability": capability, "action": action}
        return render(request, "personas/confirm_action.html", context)
    report = _run_capability_action(persona, capability, action)
    messages.success(request, _action_message(capability, action, report))
    return redirect("personas:dashboard")


def _action_message(capability: str, action: str, report) -> str:
    noun = Capability(capability).label.lower()
    if action == "opt-in":
        return f"{noun.capitalize()} features are available again; set them up in the persona wizard."
    done = f"Your {noun} is deleted" if action == "delete" else f"You opted out of {noun} features"
    details = "; ".join(report.lines()) if report else ""
    return f"{done}." + (f" Removed: {details}." if details else "")


# --- Content studio --------------------------------------------------------------------------

STUDIO_FORMS = {
    studio.ContentType.STORY: StoryForm,
    studio.ContentType.LINKEDIN: LinkedInVideoForm,
    studio.ContentType.BLOG: BlogNarrationForm,
    studio.ContentType.EMAIL: EmailVideoForm,
}


@require_GET
@persona_required
def studio_index(request, persona):
    jobs = MediaJob.objects.filter(user=request.user, kind=JobKind.RENDER).exclude(
        content_type=studio.ContentType.VOICE_SAMPLE
    )
    context = {
        "persona": persona,
        "pages": [(value, label) for value, label in studio.ContentType.choices if value in STUDIO_FORMS],
        "recent_jobs": jobs.order_by("-created_at")[:10],
        "generations_used": studio.generations_this_month(request.user),
        "generations_cap": request.user.subscription.features["monthly_generations"],
    }
    return render(request, "personas/studio/index.html", context)


@require_http_methods(["GET", "POST"])
@persona_required
def studio_page(request, persona, content_type: str):
    """GET: the form. POST: the cost estimate (confirm step); POST with `confirm`: queue the job."""
    form, scenes = _studio_forms(request, persona, content_type)
    context = {"persona": persona, "content_type": content_type, "form": form, "scenes": scenes}
    context["page_title"] = studio.ContentType(content_type).label
    if request.method == "GET" or "add_scene" in request.POST:
        return _partial_or_page(request, "personas/studio/generate.html", "studio-panel", context)
    plan = _valid_plan(persona, content_type, form, scenes)
    if plan is not None and request.POST.get("confirm") == plan.fingerprint:
        job = _start(request, persona, plan, form)
        if job is not None:
            return _job_started(request, job)
    context["plan"] = plan
    return _partial_or_page(request, "personas/studio/generate.html", "studio-panel", context)


def _studio_forms(request, persona, content_type: str):
    form_class = STUDIO_FORMS.get(content_type)
    if form_class is None:
        raise Http404
    data = request.POST if request.method == "POST" else None
    form = form_class(data, persona=persona)
    if content_type != studio.ContentType.STORY:
        return form, None
    if data is not None and "add_scene" in data:
        return form, SceneFormSet(initial=[*_posted_scenes(data), {"text": ""}], prefix="scenes")
    return form, SceneFormSet(data, prefix="scenes", initial=None if data else [{"text": ""}])


def _posted_scenes(data) -> list[dict]:
    """The scenes as typed (not yet validated), in their chosen order, to redraw with one more."""
    unbound = SceneFormSet(data, prefix="scenes")
    rows = []
    for index, scene in enumerate(unbound.forms):
        if scene["DELETE"].value():
            continue
        order = scene["ORDER"].value()
        rows.append((int(order) if str(order).lstrip("-").isdigit() else index + 1, index, scene["text"].value() or ""))
    return [{"text": text, "ORDER": position} for position, (_, _, text) in enumerate(sorted(rows), start=1)]


def _valid_plan(persona, content_type: str, form, scenes) -> studio.GenerationPlan | None:
    if not form.is_valid() or (scenes is not None and not scenes.is_valid()):
        return None
    request = studio.GenerationRequest(
        content_type=content_type,
        text=form.cleaned_data.get("text", ""),
        scenes=scenes.scenes() if scenes is not None else (),
        **form.request_options(),
    )
    try:
        return studio.plan_generation(persona=persona, request=request)
    except PipelineError as exc:
        form.add_error(None, str(exc))
        return None


def _start(request, persona, plan, form) -> MediaJob | None:
    try:
        check_rate_limit(request.user, "generation")
        return studio.start_generation(persona=persona, plan=plan)
    except (PipelineError, RateLimited) as exc:
        form.add_error(None, str(exc))
        return None


def _job_started(request, job: MediaJob):
    if request.htmx:
        response = render(request, "personas/studio/job.html#job-status", {"job": job})
        return push_url(response, reverse("personas:job", args=[job.pk]))
    return redirect("personas:job", job_id=job.pk)


def _render_job(request, job_id: int):
    assets = Prefetch("assets", queryset=studio.job_assets_in_display_order())
    return get_owned_or_404(MediaJob.objects.prefetch_related(assets), request.user, pk=job_id, kind=JobKind.RENDER)


@require_GET
@login_required
def job_detail(request, job_id: int):
    job = _render_job(request, job_id)
    context = {"job": job, "compact": request.GET.get("compact") == "1"}
    return _partial_or_page(request, "personas/studio/job.html", "job-status", context)


@require_POST
@login_required
def job_cancel(request, job_id: int):
    job = _render_job(request, job_id)
    if cancel_job(job):
        messages.info(request, "Generation cancelled.")
    if request.htmx:
        return render(request, "personas/studio/job.html#job-status", {"job": job})
    return redirect("personas:job", job_id=job.pk)


# --- Media library ---------------------------------------------------------------------------

LIBRARY_PAGE_SIZE = 20


@require_GET
@login_required
def library(request):
    content_types = [(v, label) for v, label in studio.ContentType.choices if v != studio.ContentType.VOICE_SAMPLE]
    form = LibraryFilterForm(request.GET or None, content_types=content_types)
    filters = form.cleaned_data if form.is_valid() else {}
    assets = studio.library_assets(
        request.user, kind=filters.get("kind", ""), content_type=filters.get("content_type", "")
    )
    page = Paginator(assets, LIBRARY_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "query": _query_without_page(request)}
    return _partial_or_page(request, "personas/library.html", "library-items", context)


def _query_without_page(request) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


@require_http_methods(["GET", "POST"])
@login_required
def delete_asset(request, asset_id: int):
    asset = get_owned_or_404(MediaAsset, request.user, pk=asset_id)
    if request.method == "GET":
        return render(request, "personas/confirm_delete_asset.html", {"asset": asset})
    title = str(asset)
    studio.delete_media_asset(asset=asset)
    if request.htmx:
        return HttpResponse("")  # the row is swapped out
    messages.success(request, f"Deleted “{title}”.")
    return redirect("personas:library")
