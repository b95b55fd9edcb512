"""Consent for biometric processing (voice and face). The exact text the user agreed to is stored
with its version, so a later change of wording never rewrites what someone consented to."""

from dataclasses import dataclass

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
    # REMOTE_ADDR only: a client-supplied X-Forwarded-For would let anyone write any address.
    return request.META.get("REMOTE_ADDR") or None


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
