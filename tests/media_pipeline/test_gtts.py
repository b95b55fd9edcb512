"""The free gTTS voice, with Google Translate's speech endpoint faked at the HTTP boundary."""

import base64
import urllib.parse

import pytest
import requests

from media_pipeline.providers import get_voice_provider
from media_pipeline.providers.base import ProviderError
from media_pipeline.providers.gtts import GTTSVoiceProvider
from tests.media_factory import make_audio

# Where gTTS posts each (up to 100-character) piece of text.
ENDPOINT = "https://translate.google.com/_/TranslateWebserverUi/data/batchexecute"


def google_reply(audio: bytes) -> str:
    """The batchexecute reply shape gTTS parses: the mp3 base64-encoded inside escaped JSON."""
    encoded = base64.b64encode(audio).decode()
    return f')]}}\'\n\n123\n[["wrb.fr","jQ1olc","[\\"{encoded}\\"]",null,null,null,"generic"]]\n'


@pytest.fixture
def provider(settings):
    settings.GTTS_ENABLED = True
    return GTTSVoiceProvider()


def test_registry_builds_the_adapter(provider):
    adapter = get_voice_provider("gtts")
    assert isinstance(adapter, GTTSVoiceProvider)
    assert adapter.name == "gtts" and adapter.paid is False


def test_synthesize_returns_mp3_with_measured_duration(provider, mocked):
    mp3 = make_audio("mp3", 1.5)
    mocked.post(ENDPOINT, body=google_reply(mp3))
    result = provider.synthesize("Hello there.", voice_id="")
    assert result.audio == mp3 and result.mime_type == "audio/mpeg"
    assert result.duration_seconds == pytest.approx(1.5, abs=0.05)
    assert result.characters == len("Hello there.")
    request = mocked.calls[0].request
    assert "Hello there." in urllib.parse.unquote(request.body) and '\\"en\\"' in urllib.parse.unquote(request.body)
    assert request.req_kwargs["timeout"] == (5.0, 60.0)  # never the library's default of no timeout


@pytest.mark.parametrize(
    "reply",
    [
        {"body": requests.ConnectionError("no route to host")},
        {"body": requests.exceptions.ReadTimeout()},
        {"status": 500, "body": "<html>Server Error</html>"},
        {"status": 200, "body": ')]}\'\n\n[["wrb.fr","jQ1olc",null,null,null,"generic"]]'},
    ],
)
def test_unreachable_service_is_a_final_error_so_callers_fall_back(provider, mocked, reply):
    mocked.post(ENDPOINT, **reply)
    with pytest.raises(ProviderError) as caught:
        provider.synthesize("Hello there.", voice_id="")
    assert caught.value.message == "The free voice service is unreachable"
    assert caught.value.retryable is False
    assert len(mocked.calls) == 1


def test_reply_without_audio_is_a_final_error(provider, mocked):
    mocked.post(ENDPOINT, body=")]}'\n\nnothing useful")
    with pytest.raises(ProviderError, match="returned no audio") as caught:
        provider.synthesize("Hello there.", voice_id="")
    assert caught.value.retryable is False


def test_undecodable_audio_is_a_final_error(provider, mocked):
    mocked.post(ENDPOINT, body=google_reply(b"definitely not an mp3" * 10))
    with pytest.raises(ProviderError, match="could not be read") as caught:
        provider.synthesize("Hello there.", voice_id="")
    assert caught.value.retryable is False


def test_disabled_service_fails_at_once(provider, settings, mocked):
    settings.GTTS_ENABLED = False
    with pytest.raises(ProviderError, match="GTTS_ENABLED"):
        provider.synthesize("Hello there.", voice_id="")
    assert len(mocked.calls) == 0


def test_empty_text_is_refused(provider, mocked):
    with pytest.raises(ProviderError, match="no text"):
        provider.synthesize("  ", voice_id="")


def test_cannot_clone_and_has_nothing_to_delete(provider, mocked, tmp_path):
    with pytest.raises(ProviderError, match="gTTS cannot clone voices"):
        provider.clone(str(tmp_path / "sample.wav"), voice_id="anything123", profile={})
    provider.delete("anything123")
    provider.delete_sample("42")
    assert len(mocked.calls) == 0
