from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from media_pipeline.models import MediaAsset
from media_pipeline.ratelimit import RateLimited, check_rate_limit
from personas import privacy
from personas.models import Capability, ConsentRecord, WritingPersona


@login_required
def overview(request):
    """What we store about the user, where, for how long, and the controls to delete it."""
    personas = WritingPersona.objects.filter(user=request.user)
    context = {
        "personas": personas,
        "consents": ConsentRecord.objects.filter(user=request.user),
        "asset_count": MediaAsset.objects.filter(user=request.user).count(),
        "voice_consent": privacy.active_consent(request.user, Capability.VOICE),
        "avatar_consent": privacy.active_consent(request.user, Capability.AVATAR),
        "deleted": request.session.pop("deletion_report", None),
    }
    return render(request, "privacy/overview.html", context)


@login_required
def export(request):
    try:
        # Each export zips the whole media library: limited like the other heavy requests.
        check_rate_limit(request.user, "export")
    except RateLimited as exc:
        messages.error(request, str(exc))
        return redirect("privacy:overview")
    archive = privacy.export_user_data(user=request.user)
    response = FileResponse(archive, as_attachment=True, filename="alwrity-persona-export.zip")
    response["Content-Type"] = "application/zip"
    response["Cache-Control"] = "private, no-store"
    return response


def _confirm_deleted(request, report: privacy.DeletionReport, headline: str):
    request.session["deletion_report"] = {"headline": headline, "lines": report.lines() or ["nothing was stored"]}
    return redirect("privacy:overview")


@login_required
@require_POST
def withdraw(request, capability: str):
    if capability not in Capability.values:
        messages.error(request, "Unknown capability.")
        return redirect("privacy:overview")
    report = privacy.withdraw_consent(user=request.user, capability=capability)
    return _confirm_deleted(request, report, f"{Capability(capability).label} consent withdrawn; its data is deleted.")


@login_required
@require_POST
def delete_everything(request):
    if request.POST.get("confirm") != "DELETE":
        messages.error(request, "Type DELETE in the box to confirm that everything should be deleted.")
        return redirect("privacy:overview")
    report = privacy.delete_everything(user=request.user)
    return _confirm_deleted(request, report, "All your persona data is deleted.")
