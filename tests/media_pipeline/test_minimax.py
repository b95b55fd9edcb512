"""MiniMax voice cloning and speech, with scripted replies at the HTTP boundary."""

import io
import json
import re
import tarfile
import zipfile

import pytest
import requests

from media_pipeline.providers import get_voice_provider
from media_pipeline.providers.base import ProviderError
from media_pipeline.providers.http import LOST_REPLY
from media_pipeline.providers.minimax import MiniMaxVoiceProvider, extract_audio
from tests.media_factory import make_audio

API = "https://api.minimax.io"
KEY = "mm-test-key"
VOICE_ID = "alw12x1a2b3c4dabcdefghij7"
OK = {"status_code": 0, "status_msg": "success"}
UPLOAD_OK = {
    "file": {"file_id": 111, "bytes": 1234, "created_at": 1700000000, "filename": "s.wav", "purpose": "voice_clone"},
    "base_resp": OK,
}
CLONE_OK = {"input_sensitive": False, "input_sensitive_type": 0, "demo_audio": "", "base_resp": OK}


def error(code: int, msg: str = "error") -> dict:
    return {"base_resp": {"status_code": code, "status_msg": msg}}


def t2a_ok(audio: bytes, length_ms: int | None = 1000) -> dict:
    extra = {"audio_length": length_ms, "usage_characters": 5, "audio_format": "mp3"} if length_ms else None
    return {"data": {"audio": audio.hex(), "status": 2}, "extra_info": extra, "trace_id": "t1", "base_resp": OK}


@pytest.fixture
def provider(settings, sleeps):
    settings.MINIMAX_API_KEY = KEY
    settings.MINIMAX_BASE_URL = API
    settings.MINIMAX_SYNC_TEXT_LIMIT = 3000
    settings.MINIMAX_ASYNC_TEXT_LIMIT = 50_000
    settings.HTTP_MAX_RETRIES = 4
    minimax = MiniMaxVoiceProvider()
    minimax.http.sleep = sleeps.append
    return minimax


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "sample.wav"
    path.write_bytes(make_audio("wav", 1.0))
    return str(path)


def body_of(call) -> dict:
    return json.loads(call.request.body)


def assert_no_group_id(mocked):
    for call in mocked.calls:
        assert "groupid" not in call.request.url.lower()
        assert b"GroupId" not in (call.request.body if isinstance(call.request.body, bytes) else b"")


def test_registry_builds_the_adapter(provider):
    adapter = get_voice_provider("minimax")
    assert isinstance(adapter, MiniMaxVoiceProvider)
    assert adapter.name == "minimax" and adapter.paid is True


# --- Cloning ---------------------------------------------------------------------------------


def test_clone_uploads_the_sample_and_clones_with_our_voice_id(provider, mocked, sample):
    mocked.post(API + "/v1/files/upload", json=UPLOAD_OK)
    mocked.post(API + "/v1/voice_clone", json=CLONE_OK)
    result = provider.clone(sample, voice_id=VOICE_ID, profile={})
    assert result.voice_id == VOICE_ID and result.provider_file_id == "111"
    upload, clone = mocked.calls
    assert upload.request.headers["Authorization"] == f"Bearer {KEY}"
    assert upload.request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="purpose"\r\n\r\nvoice_clone' in upload.request.body
    assert b'filename="sample.wav"' in upload.request.body
    assert body_of(clone) == {
        "file_id": 111,  # an integer, as the API requires
        "voice_id": VOICE_ID,
        "need_noise_reduction": True,
        "need_volume_normalization": True,
    }
    assert_no_group_id(mocked)


def test_clone_accepts_input_sensitive_as_an_object(provider, mocked, sample):
    mocked.post(API + "/v1/files/upload", json=UPLOAD_OK)
    mocked.post(API + "/v1/voice_clone", json={"input_sensitive": {"type": 0}, "demo_audio": "", "base_resp": OK})
    assert provider.clone(sample, voice_id=VOICE_ID, profile={}).voice_id == VOICE_ID


@pytest.mark.parametrize(
    "flag", [{"input_sensitive": {"type": 2}}, {"input_sensitive": True, "input_sensitive_type": 1}]
)
def test_flagged_sample_fails_and_the_upload_is_deleted(provider, mocked, sample, flag):
    mocked.post(API + "/v1/files/upload", json=UPLOAD_OK)
    mocked.post(API + "/v1/voice_clone", json={**flag, "demo_audio": "", "base_resp": OK})
    mocked.post(API + "/v1/files/delete", json={"file_id": 111, "base_resp": OK})
    with pytest.raises(ProviderError, match="sensitive") as caught:
        provider.clone(sample, voice_id=VOICE_ID, profile={})
    assert caught.value.retryable is False
    assert body_of(mocked.calls[2]) == {"file_id": 111, "purpose": "voice_clone"}


@pytest.mark.parametrize(
    "voice_id",
    ["short1a", "1startsWithDigit", "ends-with-dash-", "ends_with_under_", "has space 123", "bad.char.id1", "a" * 257],
)
def test_invalid_voice_ids_are_refused_before_any_request(provider, mocked, sample, voice_id):
    with pytest.raises(ProviderError, match="voice id") as caught:
        provider.clone(sample, voice_id=voice_id, profile={})
    assert caught.value.code == "invalid_voice_id"
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("voice_id", ["MiniMax001", "a" * 256, "a-b_c-d9", VOICE_ID])
def test_valid_voice_ids(provider, mocked, sample, voice_id):
    mocked.post(API + "/v1/files/upload", json=UPLOAD_OK)
    mocked.post(API + "/v1/voice_clone", json=CLONE_OK)
    assert provider.clone(sample, voice_id=voice_id, profile={}).voice_id == voice_id


def test_duplicate_voice_id_is_final_with_code_2039(provider, mocked, sample):
    mocked.post(API + "/v1/files/upload", json=UPLOAD_OK)
    mocked.post(API + "/v1/voice_clone", json=error(2039, "voice clone voice id duplicate"))
    mocked.post(API + "/v1/files/delete", json={"file_id": 111, "base_resp": OK})
    with pytest.raises(ProviderError) as caught:
        provider.clone(sample, voice_id=VOICE_ID, profile={})
    assert caught.value.code == 2039 and caught.value.retryable is False
    assert len([c for c in mocked.calls if c.request.url.endswith("/v1/voice_clone")]) == 1


def test_clone_timeout_is_sent_once_and_left_to_a_job_retry(provider, mocked, sample):
    mocked.post(API + "/v1/files/upload", json=UPLOAD_OK)
    mocked.post(API + "/v1/voice_clone", body=requests.exceptions.ReadTimeout())
    with pytest.raises(ProviderError) as caught:
        provider.clone(sample, voice_id=VOICE_ID, profile={})
    # One clone request, and the sample stays: the clone may still be running at MiniMax.
    assert [c.request.url for c in mocked.calls] == [API + "/v1/files/upload", API + "/v1/voice_clone"]
    # Retrying the job is safe: the same voice id comes back as 2039 if the clone went through.
    assert caught.value.code == LOST_REPLY and caught.value.retryable is True


def test_upload_is_retried_on_5xx_and_rate_limit_codes(provider, mocked, sample, sleeps):
    mocked.post(API + "/v1/files/upload", status=502)
    mocked.post(API + "/v1/files/upload", json=error(1002, "rate limit"))
    mocked.post(API + "/v1/files/upload", json=UPLOAD_OK)
    mocked.post(API + "/v1/voice_clone", json=CLONE_OK)
    provider.clone(sample, voice_id=VOICE_ID, profile={})
    uploads = [c for c in mocked.calls if c.request.url.endswith("/v1/files/upload")]
    assert len(uploads) == 3 and len(sleeps) == 2
    assert all(b'filename="sample.wav"' in c.request.body for c in uploads)  # the whole sample each time


def test_upload_rejected_for_identity_verification(provider, mocked, sample):
    mocked.post(API + "/v1/files/upload", json=UPLOAD_OK)
    mocked.post(API + "/v1/voice_clone", json=error(2038, "no permission"))
    mocked.post(API + "/v1/files/delete", json={"file_id": 111, "base_resp": OK})
    with pytest.raises(ProviderError, match="identity verification") as caught:
        provider.clone(sample, voice_id=VOICE_ID, profile={})
    assert caught.value.code == 2038 and caught.value.retryable is False


def test_missing_api_key_fails_clearly_without_a_request(provider, settings, mocked, sample):
    settings.MINIMAX_API_KEY = ""
    with pytest.raises(ProviderError, match="set MINIMAX_API_KEY"):
        MiniMaxVoiceProvider().clone(sample, voice_id=VOICE_ID, profile={})
    assert len(mocked.calls) == 0


def test_delete_sample_sends_an_integer_file_id(provider, mocked):
    mocked.post(API + "/v1/files/delete", json={"file_id": 111, "base_resp": OK})
    provider.delete_sample("111")
    assert body_of(mocked.calls[0]) == {"file_id": 111, "purpose": "voice_clone"}


def test_delete_voice(provider, mocked):
    mocked.post(API + "/v1/delete_voice", json={"voice_id": VOICE_ID, "base_resp": OK})
    provider.delete(VOICE_ID)
    assert body_of(mocked.calls[0]) == {"voice_type": "voice_cloning", "voice_id": VOICE_ID}


@pytest.mark.parametrize(
    "reply", [{"json": error(2013, "voice_id not exist")}, {"status": 404, "json": {"message": "not found"}}]
)
def test_deleting_a_voice_that_is_gone_counts_as_done(provider, mocked, reply):
    mocked.post(API + "/v1/delete_voice", **reply)
    provider.delete(VOICE_ID)  # no error raised
    assert len(mocked.calls) == 1 and body_of(mocked.calls[0])["voice_id"] == VOICE_ID


def test_delete_voice_reports_other_errors(provider, mocked):
    mocked.post(API + "/v1/delete_voice", json=error(2042, "no access"))
    with pytest.raises(ProviderError) as caught:
        provider.delete(VOICE_ID)
    assert caught.value.code == 2042


# --- Sync speech -----------------------------------------------------------------------------


def test_short_text_uses_sync_t2a(provider, mocked):
    mp3 = make_audio("mp3", 1.0)
    mocked.post(API + "/v1/t2a_v2", json=t2a_ok(mp3, 1000))
    result = provider.synthesize("Hello", voice_id=VOICE_ID)
    assert result.audio == mp3 and result.mime_type == "audio/mpeg"
    assert result.duration_seconds == 1.0 and result.characters == 5
    sent = body_of(mocked.calls[0])
    assert sent["model"] == "speech-02-hd" and sent["text"] == "Hello" and sent["stream"] is False
    assert sent["voice_setting"] == {"voice_id": VOICE_ID, "speed": 1.0, "vol": 1.0, "pitch": 0}  # no emotion
    assert sent["audio_setting"]["format"] == "mp3" and sent["audio_setting"]["sample_rate"] == 32000
    assert_no_group_id(mocked)


def test_voice_settings_are_clamped_and_emotion_passed(provider, mocked):
    mocked.post(API + "/v1/t2a_v2", json=t2a_ok(make_audio("mp3")))
    provider.synthesize("Hello", voice_id=VOICE_ID, emotion="happy", speed=5, volume=0, pitch=30)
    assert body_of(mocked.calls[0])["voice_setting"] == {
        "voice_id": VOICE_ID,
        "speed": 2.0,
        "vol": 0.01,
        "pitch": 12,
        "emotion": "happy",
    }


@pytest.mark.parametrize(
    ("model", "emotion", "sent"),
    [
        ("speech-02-hd", "whisper", False),
        ("speech-02-hd", "fluent", False),
        ("speech-2.6-hd", "whisper", True),
        ("speech-2.6-turbo", "fluent", True),
        ("speech-2.8-hd", "whisper", False),
        ("speech-2.8-hd", "fluent", True),
        ("speech-02-hd", "calm", True),
    ],
)
def test_emotions_a_model_lacks_are_left_to_the_model(provider, mocked, settings, model, emotion, sent):
    settings.MINIMAX_TTS_MODEL = model
    mocked.post(API + "/v1/t2a_v2", json=t2a_ok(make_audio("mp3")))
    provider.synthesize("Hello", voice_id=VOICE_ID, emotion=emotion)
    body = body_of(mocked.calls[0])
    assert body["model"] == model
    assert body["voice_setting"].get("emotion") == (emotion if sent else None)


def test_duration_is_measured_when_extra_info_is_missing(provider, mocked):
    mocked.post(API + "/v1/t2a_v2", json=t2a_ok(make_audio("mp3", 2.0), length_ms=None))
    assert provider.synthesize("Hello", voice_id=VOICE_ID).duration_seconds == pytest.approx(2.0, abs=0.05)


@pytest.mark.parametrize("data", [None, {"audio": "", "status": 2}, {"audio": "zz-not-hex", "status": 2}])
def test_missing_audio_is_an_error(provider, mocked, data):
    mocked.post(API + "/v1/t2a_v2", json={"data": data, "base_resp": OK})
    with pytest.raises(ProviderError, match="no audio"):
        provider.synthesize("Hello", voice_id=VOICE_ID)


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1013, 1024, 1033, 1039, 2045, 2056])
def test_retryable_codes_on_paid_speech_are_raised_for_a_job_retry(provider, mocked, code):
    mocked.post(API + "/v1/t2a_v2", json=error(code))
    with pytest.raises(ProviderError) as caught:
        provider.synthesize("Hello", voice_id=VOICE_ID)
    assert caught.value.retryable is True and caught.value.code == code
    assert "try again" in caught.value.message
    assert len(mocked.calls) == 1  # paid: not resent here


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (1004, "The MiniMax API key is invalid"),
        (2049, "The MiniMax API key is invalid"),
        (1008, "balance is too low"),
        (1026, "sensitive content"),
        (1027, "sensitive content"),
        (1041, "too many open connections"),
        (1042, "invisible or unusual characters"),
        (2013, "rejected the request parameters"),
        (20132, "rejected the voice sample or voice id"),
        (2037, "between 10 seconds and 5 minutes"),
        (2038, "identity verification"),
        (2039, "already exists"),
        (2042, "no access to this voice"),
        (2061, "MINIMAX_TTS_MODEL"),
        (98765, "MiniMax returned error 98765: something odd."),
    ],
)
def test_final_codes_have_readable_messages(provider, mocked, code, text):
    mocked.post(API + "/v1/t2a_v2", json=error(code, "something odd"))
    with pytest.raises(ProviderError) as caught:
        provider.synthesize("Hello", voice_id=VOICE_ID)
    assert caught.value.retryable is False and caught.value.code == code
    assert text in caught.value.message


def test_sync_speech_timeout_is_not_resent(provider, mocked):
    mocked.post(API + "/v1/t2a_v2", body=requests.exceptions.ReadTimeout())
    with pytest.raises(ProviderError) as caught:
        provider.synthesize("Hello", voice_id=VOICE_ID)
    assert len(mocked.calls) == 1
    assert caught.value.retryable is False and caught.value.code == LOST_REPLY


def test_empty_text_is_refused(provider, mocked):
    with pytest.raises(ProviderError, match="no text"):
        provider.synthesize("   ", voice_id=VOICE_ID)
    assert len(mocked.calls) == 0


# --- Long speech: submit once, then one query per job poll ----------------------------------

SUBMIT = API + "/v1/t2a_async_v2"
QUERY = API + "/v1/query/t2a_async_query_v2"
RETRIEVE = API + "/v1/files/retrieve_content"
CREATE_OK = {"task_id": "95157322514444", "task_token": "tok", "file_id": 95157322514444, "usage_characters": 40}
LONG_TEXT = "This sentence is longer than the sync limit."


def query(status: str, file_id: int | None = None) -> dict:
    body = {"task_id": 95157322514444, "status": status, "base_resp": OK}
    if file_id:
        body["file_id"] = file_id
    return body


def calls_to(mocked, url: str) -> int:
    return len([c for c in mocked.calls if c.request.url.startswith(url)])


def test_long_text_is_submitted_once_and_checked_one_query_at_a_time(provider, mocked, sleeps):
    mp3 = make_audio("mp3", 1.0)
    mocked.post(SUBMIT, json={**CREATE_OK, "base_resp": OK})
    mocked.get(QUERY, json=query("Processing"))
    mocked.get(QUERY, json=query("processing"))
    mocked.get(QUERY, json=query("Success", 222))
    mocked.get(RETRIEVE, body=mp3, content_type="application/octet-stream")
    task = provider.start_long_synthesis(LONG_TEXT, voice_id=VOICE_ID, emotion="calm")
    assert (task.task_id, task.characters) == ("95157322514444", 40)
    assert provider.check_long_synthesis(task.task_id) is None
    assert provider.check_long_synthesis(task.task_id) is None
    result = provider.check_long_synthesis(task.task_id)
    assert result.audio == mp3 and result.mime_type == "audio/mpeg"
    assert result.duration_seconds == pytest.approx(1.0, abs=0.05)
    sent = body_of(mocked.calls[0])
    assert sent["text"] == LONG_TEXT and sent["model"] == "speech-02-hd"
    assert sent["audio_setting"] == {"audio_sample_rate": 32000, "bitrate": 128000, "format": "mp3", "channel": 1}
    assert sent["voice_setting"]["english_normalization"] is False
    assert sent["voice_setting"]["emotion"] == "calm" and "text_normalization" not in sent["voice_setting"]
    assert [c.request.params for c in mocked.calls[1:4]] == [{"task_id": "95157322514444"}] * 3
    assert mocked.calls[4].request.params == {"file_id": "222"}
    assert sleeps == []  # the job waits between polls, not the adapter
    assert_no_group_id(mocked)


def test_synthesize_is_sync_only_and_refuses_text_over_the_sync_limit(provider, settings, mocked):
    settings.MINIMAX_SYNC_TEXT_LIMIT = 20
    mocked.post(API + "/v1/t2a_v2", json=t2a_ok(make_audio("mp3")))
    provider.synthesize("x" * 20, voice_id=VOICE_ID)
    with pytest.raises(ProviderError, match=re.escape("21 characters")) as caught:
        provider.synthesize("x" * 21, voice_id=VOICE_ID)
    assert caught.value.code == "too_long_for_sync" and not caught.value.retryable
    assert [c.request.url for c in mocked.calls] == [API + "/v1/t2a_v2"]


def _zip(files: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _tar(files: dict) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("pack", [_zip, _tar])
def test_long_result_archive_is_unpacked(provider, mocked, pack):
    mp3 = make_audio("mp3", 1.0)
    archive = pack({"subtitles.json": b'[{"text": "hi"}]', "extra.json": b"{}", "output.mp3": mp3})
    mocked.get(QUERY, json=query("Success", 222))
    mocked.get(RETRIEVE, body=archive)
    result = provider.check_long_synthesis("95157322514444")
    assert result.audio == mp3 and result.mime_type == "audio/mpeg"


def test_long_result_as_a_json_pointer_is_downloaded(provider, mocked):
    mp3 = make_audio("mp3")
    mocked.get(QUERY, json=query("success", 222))
    pointer = {"file": {"file_id": 222, "download_url": "https://files.example/o.mp3"}, "base_resp": OK}
    mocked.get(RETRIEVE, json=pointer)
    mocked.get("https://files.example/o.mp3", body=mp3)
    assert provider.check_long_synthesis("95157322514444").audio == mp3
    assert "Authorization" not in mocked.calls[-1].request.headers


def test_extract_audio_recognises_wav_and_refuses_other_files():
    wav = make_audio("wav")
    assert extract_audio(wav) == (wav, "audio/wav")
    with pytest.raises(ProviderError, match="neither"):
        extract_audio(b"%PDF-1.4 not audio")
    with pytest.raises(ProviderError, match="without mp3 or wav"):
        extract_audio(_zip({"readme.txt": b"nothing here"}))


@pytest.mark.parametrize("status", ["Failed", "expired"])
def test_a_failed_or_expired_task_is_final(provider, mocked, status):
    mocked.get(QUERY, json=query(status))
    with pytest.raises(ProviderError, match=f"task {status.lower()}") as caught:
        provider.check_long_synthesis("95157322514444")
    assert caught.value.retryable is False and caught.value.code == f"task_{status.lower()}"


def test_query_and_retrieve_trouble_is_retried_then_left_to_the_next_poll(provider, mocked, sleeps):
    mocked.get(QUERY, status=503)
    mocked.get(QUERY, body=requests.exceptions.ReadTimeout())
    mocked.get(QUERY, json=query("Success", 222))
    mocked.get(RETRIEVE, status=500)
    with pytest.raises(ProviderError) as caught:
        provider.check_long_synthesis("95157322514444")
    assert calls_to(mocked, QUERY) == 3 and calls_to(mocked, RETRIEVE) == 4
    assert calls_to(mocked, SUBMIT) == 0
    assert caught.value.retryable is True  # safe: looking again never submits the text again


def test_a_lost_submit_reply_is_not_resent(provider, mocked):
    mocked.post(SUBMIT, body=requests.exceptions.ReadTimeout())
    with pytest.raises(ProviderError) as caught:
        provider.start_long_synthesis(LONG_TEXT, voice_id=VOICE_ID)
    assert caught.value.code == LOST_REPLY and caught.value.retryable is False
    assert calls_to(mocked, SUBMIT) == 1


def test_a_submit_without_a_task_counts_as_a_lost_reply(provider, mocked):
    mocked.post(SUBMIT, json={"base_resp": OK})
    with pytest.raises(ProviderError, match="did not return a task") as caught:
        provider.start_long_synthesis(LONG_TEXT, voice_id=VOICE_ID)
    assert caught.value.code == LOST_REPLY and caught.value.retryable is False


def test_submit_error_code_is_raised(provider, mocked):
    mocked.post(SUBMIT, json=error(1008, "insufficient balance"))
    with pytest.raises(ProviderError, match="balance") as caught:
        provider.start_long_synthesis(LONG_TEXT, voice_id=VOICE_ID)
    assert caught.value.code == 1008 and len(mocked.calls) == 1


def test_text_over_the_async_limit_is_refused(provider, mocked):
    with pytest.raises(ProviderError, match=re.escape("50,001 characters")):
        provider.start_long_synthesis("x" * 50_001, voice_id=VOICE_ID)
    with pytest.raises(ProviderError, match="no text"):
        provider.start_long_synthesis("  ", voice_id=VOICE_ID)
    assert len(mocked.calls) == 0
