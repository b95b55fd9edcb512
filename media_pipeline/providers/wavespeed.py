"""WaveSpeed talking avatars: Hunyuan Avatar for short clips, InfiniteTalk for long ones.

Inputs are uploaded to WaveSpeed media first (free, retried) and passed as URLs; the render is
submitted once (paid, never resent) and then polled by id with `check_render`.
"""

import math
import os
import re
from datetime import UTC, datetime

from django.conf import settings

from media_pipeline.providers.base import AvatarProvider, ProviderError, RenderPoll, RenderTicket
from media_pipeline.providers.http import HttpClient, audio_seconds, short_text

FAILED_STATUSES = {"failed", "cancelled", "timeout", "deleted"}
RESOLUTIONS = {"480p", "720p"}
PREDICTION_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")  # the id goes into a URL path
UPLOAD_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
}
PROMPTS = {
    "natural": "A person talking naturally to the camera, relaxed expression, subtle head movement.",
    "professional": "A professional presenter speaking clearly to the camera, composed and confident.",
    "vivid": "An expressive, energetic speaker talking to the camera with lively facial expressions.",
}


def check_envelope(body: dict) -> None:
    """WaveSpeed wraps replies in {"code", "message", "data"}; `code` can disagree with HTTP."""
    code = body.get("code", 200)
    if code == 200:
        return
    detail = short_text(str(body.get("message") or "")) or "no details"
    if code == 401:
        raise ProviderError("WaveSpeed rejected the API key. Check WAVESPEED_API_KEY and the credit.", code=code)
    if code == 403:
        raise ProviderError(f"WaveSpeed refused access: {detail}.", code=code)
    retryable = code == 429 or (isinstance(code, int) and code >= 500)
    raise ProviderError(f"WaveSpeed returned an error ({code}): {detail}.", retryable=retryable, code=code)


def _output_url(outputs) -> str:
    """The first output as a URL; items are usually strings, some clients see dicts."""
    first = outputs[0] if isinstance(outputs, list) and outputs else ""
    if isinstance(first, dict):
        first = first.get("url") or first.get("video_url") or ""
    return first if isinstance(first, str) and first.startswith(("https://", "http://")) else ""


def _progress(created_at) -> int:
    """A rough estimate, as WaveSpeed reports none: renders take minutes (10-30 s of work per
    second of video), so approach 95 % over about ten minutes."""
    try:
        started = datetime.fromisoformat(str(created_at))
    except ValueError:
        return 40
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    elapsed = max(0.0, (datetime.now(UTC) - started).total_seconds())
    return min(95, 40 + int(55 * (1 - math.exp(-elapsed / 240))))


class WaveSpeedAvatarProvider(AvatarProvider):
    name = "wavespeed"
    paid = True
    draws_final_frame = False  # the studio finishes the video (aspect, captions, label) locally

    def __init__(self):
        self.http = HttpClient(
            service="WaveSpeed",
            base_url=settings.WAVESPEED_BASE_URL,
            api_key=settings.WAVESPEED_API_KEY,
            key_setting="WAVESPEED_API_KEY",
        )

    def start_render(
        self,
        portrait_path: str,
        audio_path: str,
        *,
        resolution: str = "480p",
        aspect: str = "1:1",
        options: dict | None = None,
    ) -> RenderTicket:
        # Both models keep the framing of the (already cropped) portrait and draw no captions; the
        # studio reframes the downloaded video to `aspect` and burns captions and the label in.
        if resolution not in RESOLUTIONS:
            raise ProviderError(f"WaveSpeed renders 480p or 720p, not {resolution}.")
        options = options or {}
        # The caller usually knows the narration's length (it synthesized it); else decode it.
        seconds = options.get("narration_seconds") or audio_seconds(
            audio_path, error="The narration audio could not be read."
        )
        model = self.model_for(seconds)
        body = {
            "image": self._upload(portrait_path),
            "audio": self._upload(audio_path),
            "resolution": resolution,
            "seed": -1,
        }
        prompt = PROMPTS.get(options.get("style", ""))
        if prompt:
            body["prompt"] = prompt
        reply = self.http.request_json("POST", f"/api/v3/{model}", paid=True, check=check_envelope, json=body)
        job_id = str((reply.get("data") or {}).get("id") or "")
        if not job_id:
            raise ProviderError("WaveSpeed accepted the render but returned no id to follow it.")
        return RenderTicket(provider_job_id=job_id)

    @staticmethod
    def model_for(seconds: float) -> str:
        """Hunyuan Avatar up to its limit, InfiniteTalk beyond; refused before anything is paid."""
        if seconds <= settings.WAVESPEED_SHORT_MAX_SECONDS:
            return settings.WAVESPEED_SHORT_MODEL
        if seconds <= settings.WAVESPEED_LONG_MAX_SECONDS:
            return settings.WAVESPEED_LONG_MODEL
        raise ProviderError(
            f"The narration is {seconds / 60:.1f} minutes long; avatar videos can be at most "
            f"{settings.WAVESPEED_LONG_MAX_SECONDS / 60:g} minutes."
        )

    def _upload(self, path: str) -> str:
        name = os.path.basename(path)
        mime = UPLOAD_TYPES.get(os.path.splitext(name)[1].lower(), "application/octet-stream")
        with open(path, "rb") as f:
            content = f.read()  # bytes, so a retried upload resends everything
        body = self.http.request_json(
            "POST", "/api/v3/media/upload/binary", check=check_envelope, files={"file": (name, content, mime)}
        )
        url = (body.get("data") or {}).get("download_url")
        if not url:
            raise ProviderError("WaveSpeed did not return a link for the uploaded file.", retryable=True)
        return url

    def check_render(self, provider_job_id: str) -> RenderPoll:
        if not PREDICTION_ID_RE.fullmatch(provider_job_id):
            raise ProviderError("This WaveSpeed render id is not valid.")
        # Built from the id rather than `urls.get`, so the key only ever goes to our base URL.
        body = self.http.request_json("GET", f"/api/v3/predictions/{provider_job_id}/result", check=check_envelope)
        data = body.get("data") or {}
        status = str(data.get("status") or "").lower()
        if status in FAILED_STATUSES:
            reason = short_text(str(data.get("error") or "")) or f"the render was {status}"
            return RenderPoll("failed", error=f"WaveSpeed could not create the video: {reason}.")
        if status != "completed":  # created / processing; services enforce the deadline
            return RenderPoll("processing", progress=_progress(data.get("created_at")))
        url = _output_url(data.get("outputs"))
        if not url:
            return RenderPoll("failed", error="WaveSpeed finished the render but returned no video.")
        # Download at once: how long the output URL stays valid is not documented.
        return RenderPoll("completed", progress=100, video=self.http.request_bytes("GET", url))
