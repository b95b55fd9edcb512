"""MiniMax: rapid voice cloning and text-to-audio (sync `t2a_v2`; `t2a_async_v2` for long text, polled by the job).

Business errors arrive as HTTP 200 with `base_resp.status_code != 0`, so every reply is checked.
No GroupId is ever sent: the current API does not take one and a wrong one causes odd errors.
"""

import io
import json
import os
import re
import tarfile
import zipfile

from django.conf import settings

from media_pipeline.providers.base import (
    ProviderError,
    SynthesisResult,
    SynthesisTask,
    VoiceCloneResult,
    VoiceProvider,
)
from media_pipeline.providers.http import LOST_REPLY, HttpClient, audio_seconds, short_text

# base_resp codes worth trying again later; every other non-zero code is final.
RETRYABLE_CODES = {1000, 1001, 1002, 1013, 1024, 1033, 1039, 2045, 2056}
_AGAIN = " We'll try again shortly."
_BAD_KEY = "The MiniMax API key is invalid or belongs to another region. Check MINIMAX_API_KEY and MINIMAX_BASE_URL."
ERROR_MESSAGES = {
    1000: "MiniMax had an unexpected error." + _AGAIN,
    1001: "MiniMax timed out." + _AGAIN,
    1002: "MiniMax is rate limiting requests." + _AGAIN,
    1004: _BAD_KEY,
    1008: "The MiniMax account balance is too low. Top up the account to continue.",
    1013: "MiniMax had an internal error." + _AGAIN,
    1024: "MiniMax had an internal error." + _AGAIN,
    1026: "MiniMax flagged the text or voice sample as sensitive content.",
    1027: "MiniMax flagged the generated audio as sensitive content.",
    1033: "MiniMax had a system error." + _AGAIN,
    1039: "MiniMax's per-minute text limit was reached." + _AGAIN,
    1041: "MiniMax has too many open connections for this account.",
    1042: "The text has too many invisible or unusual characters; clean it up and try again.",
    1043: "The voice sample did not match its expected transcript.",
    1044: "The voice prompt clip did not match its transcript.",
    2013: "MiniMax rejected the request parameters",
    20132: "MiniMax rejected the voice sample or voice id",
    2037: "The voice sample must be between 10 seconds and 5 minutes long.",
    2038: "Voice cloning is disabled on the MiniMax account until its identity verification is completed.",
    2039: "This voice id already exists at MiniMax.",
    2042: "The MiniMax account has no access to this voice.",
    2045: "MiniMax is limiting a sudden rise in requests." + _AGAIN,
    2048: "The voice prompt clip must be shorter than 8 seconds.",
    2049: _BAD_KEY,
    2056: "The MiniMax plan's resource limit was reached." + _AGAIN,
    2061: "The MiniMax plan does not include the configured model (MINIMAX_TTS_MODEL).",
}

# Codes whose meaning depends on MiniMax's own message (which parameter, which id).
DETAILED_CODES = {2013, 20132}
# 8-256 chars, a letter first, letters/digits/-/_ only, not ending in - or _.
VOICE_ID_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{6,254}[A-Za-z0-9]")
SAMPLE_TYPES = {".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".wav": "audio/wav"}
AUDIO_FORMAT = {"sample_rate": 32000, "bitrate": 128000, "format": "mp3", "channel": 1}


def check_base_resp(body: dict) -> None:
    """Raise a readable ProviderError for a non-zero `base_resp.status_code`."""
    base_resp = body.get("base_resp") or {}
    code = base_resp.get("status_code") or 0
    if code == 0:
        return
    detail = short_text(str(base_resp.get("status_msg") or ""))
    message = ERROR_MESSAGES.get(code) or f"MiniMax returned error {code}"
    if code in DETAILED_CODES or code not in ERROR_MESSAGES:
        message += f": {detail}." if detail else "."
    raise ProviderError(message, retryable=code in RETRYABLE_CODES, code=code)


def _int_id(value, what: str) -> int:
    """MiniMax ids are JSON int64; tolerate a digit string, refuse anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ProviderError(f"MiniMax returned no usable {what}.")


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _sniff(data: bytes) -> str:
    """What the bytes are: an audio mime type, "zip", "tar" or ""."""
    # An mp3 starts with an ID3 tag or a frame sync whose layer bits are non-zero (zero is AAC).
    if data.startswith(b"ID3") or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0 and data[1] & 0x06):
        return "audio/mpeg"
    if data.startswith(b"RIFF") and data[8:12] == b"WAVE":
        return "audio/wav"
    if data.startswith(b"PK\x03\x04"):
        return "zip"
    if data[257:262] == b"ustar":
        return "tar"
    return ""


def _archive_members(data: bytes, kind: str):
    if kind == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    yield archive.read(info)
    else:
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            for member in archive.getmembers():
                if member.isfile():
                    yield archive.extractfile(member).read()


def extract_audio(data: bytes) -> tuple[bytes, str]:
    """The audio inside an async T2A result: the bytes themselves, or the audio file in a zip/tar
    (the result may bundle subtitles and metadata alongside). Returns (audio, mime type)."""
    kind = _sniff(data)
    if kind in ("zip", "tar"):
        try:
            for member in _archive_members(data, kind):
                member_kind = _sniff(member)
                if member_kind.startswith("audio/"):
                    return member, member_kind
        except (zipfile.BadZipFile, tarfile.TarError) as exc:
            raise ProviderError("MiniMax returned a damaged archive.") from exc
        raise ProviderError("MiniMax returned an archive without mp3 or wav audio.")
    if kind.startswith("audio/"):
        return data, kind
    raise ProviderError("MiniMax returned a file that is neither mp3/wav audio nor an archive.")


def _spoken(text: str) -> str:
    text = text.strip()
    if not text:
        raise ProviderError("There is no text to read aloud.")
    return text


def _voice_setting(voice_id: str, *, emotion: str, speed: float, pitch: int, volume: float) -> dict:
    voice = {
        "voice_id": voice_id,
        "speed": _clamp(speed, 0.5, 2.0),
        "vol": _clamp(volume, 0.01, 10.0),
        "pitch": round(_clamp(pitch, -12, 12)),
    }
    if emotion and emotion != "auto" and model_supports_emotion(settings.MINIMAX_TTS_MODEL, emotion):
        voice["emotion"] = emotion  # omitted, the model picks the emotion itself
    return voice


def model_supports_emotion(model: str, emotion: str) -> bool:
    """`fluent` and `whisper` exist only on speech-2.6 models (speech-2.8 has `fluent` but not
    `whisper`); sending them to another model is refused (2013), so they are left to the model."""
    if emotion == "fluent":
        return model.startswith(("speech-2.6", "speech-2.8"))
    if emotion == "whisper":
        return model.startswith("speech-2.6")
    return True


class MiniMaxVoiceProvider(VoiceProvider):
    name = "minimax"
    paid = True
    long_synthesis = True

    def __init__(self):
        self.http = HttpClient(
            service="MiniMax",
            base_url=settings.MINIMAX_BASE_URL,
            api_key=settings.MINIMAX_API_KEY,
            key_setting="MINIMAX_API_KEY",
        )

    def _post(self, path: str, *, paid: bool = False, **kwargs) -> dict:
        return self.http.request_json("POST", path, paid=paid, check=check_base_resp, **kwargs)

    # --- Cloning ---------------------------------------------------------------------------

    def clone(self, sample_path: str, *, voice_id: str, profile: dict, on_upload=None) -> VoiceCloneResult:
        if not VOICE_ID_RE.fullmatch(voice_id):
            raise ProviderError(
                "The voice id must be 8-256 letters, digits, '-' or '_', start with a letter and "
                "not end with '-' or '_'.",
                code="invalid_voice_id",
            )
        file_id = self._upload_sample(sample_path)
        if on_upload:
            on_upload(str(file_id))
        try:
            body = self._post(
                "/v1/voice_clone",
                paid=True,
                json={
                    "file_id": file_id,
                    "voice_id": voice_id,
                    "need_noise_reduction": True,
                    "need_volume_normalization": True,
                },
            )
            if self._flagged(body):
                raise ProviderError("MiniMax flagged the voice sample as sensitive content.", code="input_sensitive")
        except ProviderError as exc:
            if exc.code == LOST_REPLY:
                # The clone may still be running at MiniMax, so its sample is left in place.
                # Retrying is safe: the id is ours, so a clone that did go through comes back as
                # 2039, and MiniMax bills a clone on its first use, not at cloning time.
                raise ProviderError(exc.message, retryable=True, code=LOST_REPLY) from exc
            # The clone failed and the sample is biometric data: remove it now (a retry uploads
            # it again), unless the caller tracks the upload and deletes it itself.
            if not on_upload:
                self._delete_sample_quietly(file_id)
            raise
        return VoiceCloneResult(voice_id=voice_id, provider_file_id=str(file_id), raw=body)

    def _upload_sample(self, sample_path: str) -> int:
        name = os.path.basename(sample_path)
        mime = SAMPLE_TYPES.get(os.path.splitext(name)[1].lower(), "application/octet-stream")
        with open(sample_path, "rb") as f:
            content = f.read()  # bytes, not the file object, so a retry resends the whole sample
        body = self._post("/v1/files/upload", data={"purpose": "voice_clone"}, files={"file": (name, content, mime)})
        return _int_id((body.get("file") or {}).get("file_id"), "file id")

    @staticmethod
    def _flagged(body: dict) -> bool:
        """`input_sensitive` is documented both as a bool (with `input_sensitive_type`) and as an
        object with `type`; 0 / false means clean."""
        flag = body.get("input_sensitive")
        if isinstance(flag, dict):
            return bool(flag.get("type"))
        return bool(flag) or bool(body.get("input_sensitive_type"))

    def _delete_sample_quietly(self, file_id: int) -> None:
        try:
            self.delete_sample(str(file_id))
        except ProviderError:
            pass  # uploads expire at MiniMax; the clone error is what the caller needs

    def delete_sample(self, provider_file_id: str) -> None:
        if provider_file_id:
            self._post("/v1/files/delete", json={"file_id": int(provider_file_id), "purpose": "voice_clone"})

    def delete(self, voice_id: str) -> None:
        # The delete_voice body is not in the official docs; treat "no such voice" as deleted.
        try:
            self._post("/v1/delete_voice", json={"voice_type": "voice_cloning", "voice_id": voice_id})
        except ProviderError as exc:
            if exc.code == 404 or re.search(r"not (found|exist)", exc.message, re.IGNORECASE):
                return
            raise

    # --- Speech ----------------------------------------------------------------------------

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
        """Short text in one blocking `t2a_v2` call. Longer text is a background task
        (`start_long_synthesis`, then `check_long_synthesis` from a job's polls): waiting for it
        here would hold a worker for minutes."""
        text = _spoken(text)
        if len(text) > settings.MINIMAX_SYNC_TEXT_LIMIT:
            raise ProviderError(
                f"This text is too long to narrate in one request ({len(text):,} characters; "
                f"the limit is {settings.MINIMAX_SYNC_TEXT_LIMIT:,}).",
                code="too_long_for_sync",
            )
        voice = _voice_setting(voice_id, emotion=emotion, speed=speed, pitch=pitch, volume=volume)
        body = self._post(
            "/v1/t2a_v2",
            paid=True,
            json={
                "model": settings.MINIMAX_TTS_MODEL,
                "text": text,
                "stream": False,
                "output_format": "hex",
                "voice_setting": voice,
                "audio_setting": AUDIO_FORMAT,
            },
        )
        hex_audio = (body.get("data") or {}).get("audio") or ""
        try:
            audio = bytes.fromhex(hex_audio)
        except ValueError:
            audio = b""
        if not audio:
            raise ProviderError("MiniMax returned no audio for this text.")
        extra = body.get("extra_info") or {}
        length_ms = extra.get("audio_length") or 0
        seconds = length_ms / 1000 if length_ms > 0 else self._measure(audio)
        characters = extra.get("usage_characters") or len(text)
        return SynthesisResult(audio=audio, mime_type="audio/mpeg", duration_seconds=seconds, characters=characters)

    def start_long_synthesis(
        self,
        text: str,
        *,
        voice_id: str,
        emotion: str = "auto",
        speed: float = 1.0,
        pitch: int = 0,
        volume: float = 1.0,
    ) -> SynthesisTask:
        """Submit `t2a_async_v2`. The submit is billed, so it is sent once: a lost reply comes back
        as a final LOST_REPLY error (the task may exist), never as a retry."""
        text = _spoken(text)
        if len(text) > settings.MINIMAX_ASYNC_TEXT_LIMIT:
            # One task takes 50,000 characters (about an hour of speech); splitting would bill
            # several tasks and stitch mp3s, so longer texts are refused clearly instead.
            raise ProviderError(
                f"This text is too long to narrate in one go ({len(text):,} characters; "
                f"the limit is {settings.MINIMAX_ASYNC_TEXT_LIMIT:,})."
            )
        voice = _voice_setting(voice_id, emotion=emotion, speed=speed, pitch=pitch, volume=volume)
        # The async API names some fields differently from t2a_v2 (audio_sample_rate,
        # english_normalization) and defaults to stereo, so the settings are spelled out here.
        body = self._post(
            "/v1/t2a_async_v2",
            paid=True,
            json={
                "model": settings.MINIMAX_TTS_MODEL,
                "text": text,
                "voice_setting": {**voice, "english_normalization": False},
                "audio_setting": {"audio_sample_rate": 32000, "bitrate": 128000, "format": "mp3", "channel": 1},
            },
        )
        task_id = str(body.get("task_id") or "")
        if not task_id:
            # Accepted (and perhaps billed) but nothing to follow: the same as a lost reply.
            raise ProviderError("MiniMax did not return a task for the narration.", code=LOST_REPLY)
        return SynthesisTask(task_id=task_id, characters=body.get("usage_characters") or len(text))

    def check_long_synthesis(self, task_id: str) -> SynthesisResult | None:
        """One query of the task: None while it runs; its audio (downloaded at once, the file
        expires after 9 hours) when done; a final error when it failed or expired. Network
        trouble is a retryable error: the caller looks again later, it never resubmits."""
        body = self.http.request_json(
            "GET", "/v1/query/t2a_async_query_v2", params={"task_id": task_id}, check=check_base_resp
        )
        status = str(body.get("status") or "").lower()  # documented as both "success" and "Success"
        if status in ("failed", "expired"):
            raise ProviderError(f"MiniMax could not generate the narration (task {status}).", code=f"task_{status}")
        if status != "success":
            return None
        audio, mime = extract_audio(self._retrieve(_int_id(body.get("file_id"), "result file id")))
        return SynthesisResult(audio=audio, mime_type=mime, duration_seconds=self._measure(audio))

    def _retrieve(self, file_id: int) -> bytes:
        data = self.http.request_bytes("GET", "/v1/files/retrieve_content", params={"file_id": file_id})
        if data.lstrip().startswith(b"{"):
            # An error envelope, or (seen in a public client) a JSON pointer to the file.
            try:
                body = json.loads(data)
            except ValueError as exc:
                raise ProviderError("MiniMax returned an unreadable narration file.") from exc
            check_base_resp(body)
            url = (body.get("file") or {}).get("download_url")
            if not url:
                raise ProviderError("MiniMax returned no narration file.")
            data = self.http.request_bytes("GET", url)
        return data

    @staticmethod
    def _measure(audio: bytes) -> float:
        return audio_seconds(audio, error="MiniMax returned audio that could not be decoded.")
