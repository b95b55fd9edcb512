"""Consent for biometric processing (voice and face). The exact text the user agreed to is stored
with its version, so a later change of wording never rewrites what someone consented to."""

import ipaddress
from dataclasses import dataclass

from django.conf import settings

from personas.models import Capability, ConsentRecord, WritingPersona


@dataclass(frozen=True)
class ConsentText:
    version: str
    text: str


CONSENT_TEXTS = {
    Capability.VOICE: ConsentText(
        version="2026-11-voice-1",
        text=(
            "I agree that ALwrity may process the recording I provide to create a synthetic copy of my voice, "
            "and may send it to the voice provider for that purpose only. The recording is my own voice. "
            "The recording is deleted once training has finished; the cloned voice is used only for content I "
            "create, and I can delete it at any time from my persona settings."
        ),
    ),
    Capability.AVATAR: ConsentText(
        version="2026-11-avatar-1",
        text=(
            "I agree that ALwrity may process the photo I provide, including the geometry of my face, to create "
            "a talking avatar of me, and may send it to the video provider for that purpose only. The photo "
            "shows me. The avatar is used only for content I create, and I can delete the photo and avatar at "
            "any time from my persona settings."
        ),
    ),
}


def consent_text(capability: str) -> ConsentText:
    return CONSENT_TEXTS[Capability(capability)]


def has_current_consent(*, persona: WritingPersona, capability: str) -> bool:
    """True when the user agreed to the current wording and has not withdrawn it."""
    return persona.consents.filter(
        capability=capability, text_version=consent_text(capability).version, withdrawn_at__isnull=True
    ).exists()


def client_ip(request) -> str | None:
    """The address the consent came from. Behind TRUSTED_PROXY_COUNT proxies of ours it is the
    entry our outermost proxy appended to X-Forwarded-For; entries left of it are whatever the
    client sent, so they are never used. Without trusted proxies the header is ignored."""
    remote = request.META.get("REMOTE_ADDR") or None
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
    if proxies <= 0 or not forwarded:
        return remote
    candidate = forwarded[max(len(forwarded) - proxies, 0)]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


def record_consent(*, persona: WritingPersona, capability: str, request) -> ConsentRecord:
    """Store who agreed to which text, when, and from where. Agreeing again to the same current
    text adds nothing new."""
    current = consent_text(capability)
    existing = persona.consents.filter(
        capability=capability, text_version=current.version, withdrawn_at__isnull=True
    ).first()
    if existing is not None:
        return existing
    return ConsentRecord.objects.create(
        user=persona.user,
        persona=persona,
        capability=capability,
        text=current.text,
        text_version=current.version,
        ip_address=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:500],
    )
