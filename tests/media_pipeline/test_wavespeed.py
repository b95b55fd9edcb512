"""WaveSpeed talking-avatar renders, with scripted replies at the HTTP boundary."""

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
import requests
from PIL import Image

from media_pipeline.providers import get_avatar_provider
from media_pipeline.providers.base import ProviderError
from media_pipeline.providers.http import LOST_REPLY
from media_pipeline.providers.wavespeed import WaveSpeedAvatarProvider
from tests.media_factory import make_audio, make_mp4

API = "https://api.wavespeed.ai"
KEY = "ws-test-key"
UPLOAD = API + "/api/v3/media/upload/binary"
HUNYUAN = API + "/api/v3/wavespeed-ai/hunyuan-avatar"
INFINITETALK = API + "/api/v3/wavespeed-ai/infinitetalk"
JOB_ID = "cc570ce4aa"
RESULT = f"{API}/api/v3/predictions/{JOB_ID}/result"
VIDEO_URL = "https://cdn.example/out.mp4"


def uploaded(kind: str, url: str) -> dict:
    return {"code": 200, "message": "success", "data": {"type": kind, "download_url": url, "filename": "f", "size": 9}}


def prediction(status: str, *, outputs=(), error: str = "", created_at: str = "2026-09-01T10:00:00.000Z") -> dict:
    return {
        "code": 200,
        "message": "success",
        "data": {
            "id": JOB_ID,
            "model": "wavespeed-ai/hunyuan-avatar",
            "outputs": list(outputs),
            "urls": {"get": f"https://elsewhere.example/api/v3/predictions/{JOB_ID}/result"},
            "has_nsfw_contents": None,
            "status": status,
            "created_at": created_at,
            "error": error,
            "timings": {"inference": 0},
        },
    }


@pytest.fixture
def provider(settings, sleeps):
    settings.WAVESPEED_API_KEY = KEY
    settings.WAVESPEED_BASE_URL = API
    settings.WAVESPEED_SHORT_MAX_SECONDS = 120
    settings.WAVESPEED_LONG_MAX_SECONDS = 600
    settings.HTTP_MAX_RETRIES = 4
    wavespeed = WaveSpeedAvatarProvider()
    wavespeed.http.sleep = sleeps.append
    return wavespeed


@pytest.fixture
def portrait(tmp_path):
    path = tmp_path / "portrait.png"
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "#336699").save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return str(path)


@pytest.fixture
def narration(tmp_path):
    path = tmp_path / "speech.mp3"
    path.write_bytes(make_audio("mp3", 2.0))
    return str(path)


def script_uploads(mocked):
    mocked.post(UPLOAD, json=uploaded("image", "https://cdn.example/p.png"))
    mocked.post(UPLOAD, json=uploaded("audio", "https://cdn.example/a.mp3"))


def test_registry_builds_the_adapter(provider):
    adapter = get_avatar_provider("wavespeed")
    assert isinstance(adapter, WaveSpeedAvatarProvider)
    assert adapter.name == "wavespeed" and adapter.paid is True


# --- Starting a render -----------------------------------------------------------------------


def test_short_audio_uploads_inputs_and_submits_hunyuan_once(provider, mocked, portrait, narration):
    script_uploads(mocked)
    mocked.post(HUNYUAN, json=prediction("created"))
    ticket = provider.start_render(portrait, narration, options={"style": "professional"})
    assert ticket.provider_job_id == JOB_ID and ticket.video is None
    image_upload, audio_upload, submit = mocked.calls
    assert b'name="file"; filename="portrait.png"' in image_upload.request.body
    assert b'filename="speech.mp3"' in audio_upload.request.body
    assert all(c.request.headers["Authorization"] == f"Bearer {KEY}" for c in mocked.calls)
    sent = json.loads(submit.request.body)
    assert sent == {
        "image": "https://cdn.example/p.png",
        "audio": "https://cdn.example/a.mp3",
        "resolution": "480p",
        "seed": -1,
        "prompt": sent["prompt"],  # flat JSON, no "input" wrapper
    }
    assert "professional" in sent["prompt"]


def test_long_audio_uses_infinitetalk_at_720p(provider, settings, mocked, portrait, narration):
    settings.WAVESPEED_SHORT_MAX_SECONDS = 1
    script_uploads(mocked)
    mocked.post(INFINITETALK, json=prediction("created"))
    provider.start_render(portrait, narration, resolution="720p")
    sent = json.loads(mocked.calls[2].request.body)
    assert sent["resolution"] == "720p" and "prompt" not in sent


def test_too_long_audio_is_refused_before_any_paid_call(provider, settings, mocked, portrait, narration):
    settings.WAVESPEED_SHORT_MAX_SECONDS = 0.5
    settings.WAVESPEED_LONG_MAX_SECONDS = 1
    with pytest.raises(ProviderError, match="at most") as caught:
        provider.start_render(portrait, narration)
    assert caught.value.retryable is False
    assert len(mocked.calls) == 0


def test_unreadable_audio_is_refused(provider, mocked, portrait, tmp_path):
    bad = tmp_path / "speech.mp3"
    bad.write_bytes(b"not audio" * 50)
    with pytest.raises(ProviderError, match="could not be read"):
        provider.start_render(portrait, str(bad))
    assert len(mocked.calls) == 0


def test_unknown_resolution_is_refused(provider, mocked, portrait, narration):
    with pytest.raises(ProviderError, match="480p or 720p"):
        provider.start_render(portrait, narration, resolution="4k")
    assert len(mocked.calls) == 0


def test_uploads_are_retried(provider, mocked, sleeps, portrait, narration):
    mocked.post(UPLOAD, status=500)
    mocked.post(UPLOAD, body=requests.exceptions.ReadTimeout())
    script_uploads(mocked)
    mocked.post(HUNYUAN, json=prediction("created"))
    assert provider.start_render(portrait, narration).provider_job_id == JOB_ID
    assert len([c for c in mocked.calls if c.request.url == UPLOAD]) == 4
    assert len(sleeps) == 2


def test_submit_timeout_is_never_resent(provider, mocked, sleeps, portrait, narration):
    script_uploads(mocked)
    mocked.post(HUNYUAN, body=requests.exceptions.ReadTimeout())
    with pytest.raises(ProviderError) as caught:
        provider.start_render(portrait, narration)
    assert len([c for c in mocked.calls if c.request.url == HUNYUAN]) == 1
    assert caught.value.retryable is False and caught.value.code == LOST_REPLY
    assert sleeps == []


def test_submit_5xx_is_never_resent(provider, mocked, portrait, narration):
    script_uploads(mocked)
    mocked.post(HUNYUAN, status=502, body="<html>Bad gateway</html>")
    with pytest.raises(ProviderError) as caught:
        provider.start_render(portrait, narration)
    assert len([c for c in mocked.calls if c.request.url == HUNYUAN]) == 1
    assert caught.value.retryable is False and "<html" not in caught.value.message


def test_submit_rate_limited_is_resent_after_retry_after(provider, mocked, sleeps, portrait, narration):
    script_uploads(mocked)
    mocked.post(HUNYUAN, status=429, headers={"Retry-After": "2"}, json={"code": 429, "message": "Too Many Requests"})
    mocked.post(HUNYUAN, json=prediction("created"))
    assert provider.start_render(portrait, narration).provider_job_id == JOB_ID
    assert sleeps == [2.0]


def test_submit_rejected_in_the_envelope(provider, mocked, portrait, narration):
    script_uploads(mocked)
    mocked.post(HUNYUAN, json={"code": 400, "message": "image: no face detected"})
    with pytest.raises(ProviderError, match="no face detected") as caught:
        provider.start_render(portrait, narration)
    assert caught.value.retryable is False and caught.value.code == 400


def test_bad_key_is_final_and_readable(provider, mocked, portrait, narration):
    mocked.post(UPLOAD, status=401, json={"code": 401, "message": "Unauthorized"})
    with pytest.raises(ProviderError, match="WAVESPEED_API_KEY") as caught:
        provider.start_render(portrait, narration)
    assert caught.value.retryable is False and len(mocked.calls) == 1


def test_missing_key_fails_without_a_request(provider, settings, mocked, portrait, narration):
    settings.WAVESPEED_API_KEY = ""
    with pytest.raises(ProviderError, match="set WAVESPEED_API_KEY"):
        WaveSpeedAvatarProvider().start_render(portrait, narration)
    assert len(mocked.calls) == 0


# --- Polling ---------------------------------------------------------------------------------


def test_created_processing_completed_downloads_the_video(provider, mocked):
    video = make_mp4()
    mocked.get(RESULT, json=prediction("created"))
    mocked.get(RESULT, json=prediction("processing"))
    mocked.get(RESULT, json=prediction("completed", outputs=[VIDEO_URL]))
    mocked.get(VIDEO_URL, body=video, content_type="video/mp4")
    first, second, done = (provider.check_render(JOB_ID) for _ in range(3))
    assert first.status == second.status == "processing"
    assert done.status == "completed" and done.video == video and done.progress == 100
    assert [c.request.url for c in mocked.calls] == [RESULT, RESULT, RESULT, VIDEO_URL]  # not urls.get
    assert "Authorization" not in mocked.calls[-1].request.headers  # the key stays with the API


def test_completed_output_given_as_a_dict(provider, mocked):
    mocked.get(RESULT, json=prediction("completed", outputs=[{"video_url": VIDEO_URL}]))
    mocked.get(VIDEO_URL, body=make_mp4())
    assert provider.check_render(JOB_ID).status == "completed"


def test_completed_without_outputs_is_a_failure(provider, mocked):
    mocked.get(RESULT, json=prediction("completed", outputs=[]))
    poll = provider.check_render(JOB_ID)
    assert poll.status == "failed" and "no video" in poll.error


def test_video_download_is_retried(provider, mocked, sleeps):
    video = make_mp4()
    mocked.get(RESULT, json=prediction("completed", outputs=[VIDEO_URL]))
    mocked.get(VIDEO_URL, status=503)
    mocked.get(VIDEO_URL, body=video)
    assert provider.check_render(JOB_ID).video == video
    assert len(sleeps) == 1


def test_failed_render_reports_the_providers_error(provider, mocked):
    mocked.get(RESULT, json=prediction("failed", error="Face not detected in the image"))
    poll = provider.check_render(JOB_ID)
    assert poll.status == "failed" and poll.video is None
    assert poll.error == "WaveSpeed could not create the video: Face not detected in the image."


@pytest.mark.parametrize("status", ["cancelled", "timeout", "deleted"])
def test_other_terminal_statuses_fail_with_a_readable_error(provider, mocked, status):
    mocked.get(RESULT, json=prediction(status))
    poll = provider.check_render(JOB_ID)
    assert poll.status == "failed" and f"the render was {status}" in poll.error


def test_a_render_that_never_finishes_keeps_reporting_processing(provider, mocked):
    # The job deadline lives in services; the adapter just reports what it sees, every time.
    started = (datetime.now(UTC) - timedelta(minutes=3)).isoformat()
    mocked.get(RESULT, json=prediction("processing", created_at=started))
    polls = [provider.check_render(JOB_ID) for _ in range(5)]
    assert {p.status for p in polls} == {"processing"}
    assert all(40 < p.progress < 95 and p.video is None for p in polls)
    assert len(mocked.calls) == 5


def test_progress_estimate_grows_and_tolerates_odd_timestamps(provider, mocked):
    now = datetime.now(UTC)
    mocked.get(RESULT, json=prediction("processing", created_at=now.isoformat()))
    mocked.get(RESULT, json=prediction("processing", created_at=(now - timedelta(minutes=20)).isoformat()))
    mocked.get(RESULT, json=prediction("processing", created_at="yesterday-ish"))
    mocked.get(RESULT, json=prediction("processing", created_at="2026-09-01T10:00:00"))
    fresh, old, odd, naive = (provider.check_render(JOB_ID).progress for _ in range(4))
    assert fresh == 40 and old >= 90 and odd == 40 and 40 <= naive <= 95


def test_poll_errors_401_403_are_final(provider, mocked):
    mocked.get(RESULT, status=401, json={"code": 401, "message": "Invalid API key"})
    mocked.get(RESULT, status=403, json={"code": 403, "message": "Account suspended"})
    with pytest.raises(ProviderError, match="WAVESPEED_API_KEY") as unauthorized:
        provider.check_render(JOB_ID)
    with pytest.raises(ProviderError, match="Account suspended") as forbidden:
        provider.check_render(JOB_ID)
    assert unauthorized.value.retryable is False and forbidden.value.retryable is False
    assert len(mocked.calls) == 2


def test_poll_rate_limit_then_success(provider, mocked, sleeps):
    mocked.get(RESULT, status=429, headers={"Retry-After": "1"})
    mocked.get(RESULT, json=prediction("processing"))
    assert provider.check_render(JOB_ID).status == "processing"
    assert sleeps == [1.0]


def test_poll_envelope_error_is_retried_like_http(provider, mocked):
    mocked.get(RESULT, json={"code": 500, "message": "internal error"})
    mocked.get(RESULT, json=prediction("processing"))
    assert provider.check_render(JOB_ID).status == "processing"
    assert len(mocked.calls) == 2


def test_poll_5xx_exhausting_retries_is_retryable(provider, mocked):
    mocked.get(RESULT, status=500)
    with pytest.raises(ProviderError) as caught:
        provider.check_render(JOB_ID)
    assert caught.value.retryable is True and len(mocked.calls) == 4


def test_poll_malformed_json_then_success(provider, mocked):
    mocked.get(RESULT, body="<html>oops</html>")
    mocked.get(RESULT, json=prediction("processing"))
    assert provider.check_render(JOB_ID).status == "processing"


@pytest.mark.parametrize("job_id", ["", "../balance", "a/b", "id?x=1"])
def test_invalid_render_ids_are_refused(provider, mocked, job_id):
    with pytest.raises(ProviderError, match="not valid"):
        provider.check_render(job_id)
    assert len(mocked.calls) == 0


def test_adapters_built_for_each_job_step_share_one_connection_pool(provider):
    assert get_avatar_provider("wavespeed").http.session is provider.http.session


def test_a_known_narration_length_is_not_decoded_again(provider, mocked, portrait, tmp_path):
    not_decodable = tmp_path / "speech.wav"
    not_decodable.write_bytes(b"RIFF not really audio")
    script_uploads(mocked)
    mocked.post(INFINITETALK, json=prediction("created"))
    ticket = provider.start_render(portrait, str(not_decodable), options={"narration_seconds": 300.0})
    assert ticket.provider_job_id == JOB_ID
