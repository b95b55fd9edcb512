"""Persona-level writes: the settings every generation reads, and deleting or opting out of the
voice and avatar. Deletion itself (provider voices, files, job files, fields) lives in
`personas.privacy`, which the privacy page uses too, so there is one way to delete biometric data."""

import uuid

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from personas import privacy
from personas.models import Capability, PlatformAdaptation, WritingPersona

VOICE_SETTINGS = ("voice_emotion", "voice_speed", "voice_pitch", "voice_volume")
AVATAR_SETTINGS = ("avatar_background", "avatar_style", "avatar_framing", "avatar_aspect_ratio", "captions_enabled")
ADAPTATION_SETTINGS = ("tone", "target_length_words", "hashtags", "emoji_use")


def update_voice_settings(*, persona: WritingPersona, **values) -> None:
    _update(persona, VOICE_SETTINGS, values)


def update_avatar_settings(
    *,
    persona: WritingPersona,
    background_image: bytes | None = None,
    remove_background_image: bool = False,
    **values,
) -> None:
    """Save the avatar look. `background_image` is an already validated, re-encoded PNG."""
    old_image = persona.avatar_background_image.name
    with transaction.atomic():
        if background_image is not None:
            persona.avatar_background_image.save(
                f"background-{uuid.uuid4().hex}.png", ContentFile(background_image), save=False
            )
        elif remove_background_image:
            persona.avatar_background_image = ""
        _update(persona, AVATAR_SETTINGS, values, extra_fields=["avatar_background_image"])
    if old_image and old_image != persona.avatar_background_image.name:
        default_storage.delete(old_image)  # replaced or removed: the old upload is not kept


def update_content_preference(*, persona: WritingPersona, content_preference: str) -> None:
    _update(persona, ("content_preference",), {"content_preference": content_preference})


def save_platform_adaptations(*, persona: WritingPersona, adaptations: list[dict]) -> None:
    """One row per platform: created on first save, updated afterwards."""
    with transaction.atomic():
        for values in adaptations:
            PlatformAdaptation.objects.update_or_create(
                persona=persona,
                platform=values["platform"],
                defaults={name: values[name] for name in ADAPTATION_SETTINGS},
            )


def _update(persona: WritingPersona, allowed: tuple, values: dict, extra_fields: list | None = None) -> None:
    unknown = set(values) - set(allowed)
    if unknown:
        raise TypeError(f"Not a persona setting: {', '.join(sorted(unknown))}")
    for name, value in values.items():
        setattr(persona, name, value)
    persona.save(update_fields=[*values, *(extra_fields or []), "updated_at"])


# --- Deleting and opting out ----------------------------------------------------------------


def delete_voice(*, persona: WritingPersona) -> privacy.DeletionReport:
    """Delete the cloned voice (at the provider too); content falls back to the standard voice."""
    return privacy.delete_voice(persona=persona)


def delete_avatar(*, persona: WritingPersona) -> privacy.DeletionReport:
    """Delete the photo, portrait and avatar previews; videos can no longer be made."""
    return privacy.delete_avatar(persona=persona)


def opt_out(*, persona: WritingPersona, capability: str) -> privacy.DeletionReport:
    """Stop using the capability: delete its data, withdraw consent and remember the choice so the
    studio and the wizard do not offer it again until the user opts back in."""
    report = privacy.withdraw_consent(user=persona.user, capability=capability)
    flag = _opt_out_flag(capability)
    WritingPersona.objects.filter(user=persona.user).update(**{flag: True})
    setattr(persona, flag, True)
    return report


def opt_in(*, persona: WritingPersona, capability: str) -> None:
    """Allow the capability again; training it still needs fresh consent in the wizard."""
    flag = _opt_out_flag(capability)
    setattr(persona, flag, False)
    persona.save(update_fields=[flag, "updated_at"])


def _opt_out_flag(capability: str) -> str:
    if capability not in Capability.values:
        raise ValueError(f"Unknown capability {capability!r}")
    return f"{capability}_opted_out"
