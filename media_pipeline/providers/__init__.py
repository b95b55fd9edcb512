"""Provider registry: names in settings (VOICE_PROVIDER, AVATAR_PROVIDER, ...) map to adapters."""

from django.conf import settings
from django.utils.module_loading import import_string

VOICE_PROVIDERS = {
    "offline": "media_pipeline.providers.local.OfflineVoiceProvider",
    "minimax": "media_pipeline.providers.minimax.MiniMaxVoiceProvider",
    "gtts": "media_pipeline.providers.gtts.GTTSVoiceProvider",
}
AVATAR_PROVIDERS = {
    "offline": "media_pipeline.providers.local.OfflineAvatarProvider",
    "wavespeed": "media_pipeline.providers.wavespeed.WaveSpeedAvatarProvider",
}


def get_voice_provider(name: str | None = None):
    return import_string(VOICE_PROVIDERS[name or settings.VOICE_PROVIDER])()


def get_avatar_provider(name: str | None = None):
    return import_string(AVATAR_PROVIDERS[name or settings.AVATAR_PROVIDER])()
