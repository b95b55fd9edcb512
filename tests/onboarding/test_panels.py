"""The voice and avatar panels built together agree with each panel built on its own."""

from django.utils import timezone

from onboarding import services
from personas.consent import record_consent
from personas.models import Capability, WritingPersona


def reloaded(persona):
    return WritingPersona.objects.select_related("user__subscription").get(pk=persona.pk)


def test_panels_together_read_consents_in_one_query(persona, rf, django_assert_num_queries):
    record_consent(persona=persona, capability=Capability.VOICE, request=rf.get("/"))
    persona = reloaded(persona)
    with django_assert_num_queries(1):
        consented = services.current_consents(persona, [Capability.VOICE, Capability.AVATAR])
    assert consented == {Capability.VOICE}
    voice, avatar = services.media_panels(persona)
    assert (voice.needs_consent, avatar.needs_consent) == (False, True)
    assert voice.needs_consent == services.voice_panel(persona).needs_consent
    assert avatar.needs_consent == services.avatar_panel(persona).needs_consent


def test_a_withdrawn_consent_is_not_current(persona, rf):
    consent = record_consent(persona=persona, capability=Capability.AVATAR, request=rf.get("/"))
    consent.withdrawn_at = timezone.now()
    consent.save()
    _, avatar = services.media_panels(reloaded(persona))
    assert avatar.needs_consent
