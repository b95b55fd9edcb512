"""gTTS: a free, generic (not cloned) voice through Google Translate's speech endpoint.

It needs the internet; when the service is unreachable the error is final so callers fall back
to the offline voice at once instead of retrying.
"""

import io

import requests
from django.conf import settings
from gtts import gTTS
from gtts.tts import gTTSError

from media_pipeline.providers.base import ProviderError, SynthesisResult, VoiceCloneResult, VoiceProvider
from media_pipeline.providers.http import audio_seconds


class GTTSVoiceProvider(VoiceProvider):
    name = "gtts"
    paid = False

    def clone(self, sample_path: str, *, voice_id: str, profile: dict, on_upload=None) -> VoiceCloneResult:
        raise ProviderError("gTTS cannot clone voices")

    def synthesize(
        self,
        text: str,
        *,
        voice_id: str,
        emotion: str = "auto",
        speed: float = 1.0,
        pitch: int = 0,
        volume: float = 1.0,
        profile: dict | None = None,
    ) -> SynthesisResult:
        # gTTS has one voice and a single "slow" option, so the voice settings are ignored.
        if not settings.GTTS_ENABLED:
            raise ProviderError("The free voice service is turned off (GTTS_ENABLED).")
        text = text.strip()
        if not text:
            raise ProviderError("There is no text to read aloud.")
        timeout = (settings.HTTP_CONNECT_TIMEOUT, settings.HTTP_READ_TIMEOUT)
        buffer = io.BytesIO()
        try:
            # lang_check=False: checking the language would be one more web request.
            gTTS(text, lang="en", lang_check=False, timeout=timeout).write_to_fp(buffer)
        except (gTTSError, requests.RequestException) as exc:
            raise ProviderError("The free voice service is unreachable") from exc
        audio = buffer.getvalue()
        if not audio:
            raise ProviderError("The free voice service returned no audio.")
        seconds = audio_seconds(audio, error="The free voice service returned audio that could not be read.")
        return SynthesisResult(audio=audio, mime_type="audio/mpeg", duration_seconds=seconds, characters=len(text))

    def delete(self, voice_id: str) -> None:
        """Nothing is stored at the service."""

    def delete_sample(self, provider_file_id: str) -> None:
        """Nothing is uploaded."""
