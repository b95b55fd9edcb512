"""The provider interface and the one retrying HTTP base every HTTP adapter subclasses."""

from collections.abc import Callable
from dataclasses import dataclass, field


class ProviderError(Exception):
    """A provider call failed. `message` is safe to show to the user; `retryable` says whether
    trying again later can help (rate limits, timeouts, 5xx) or not (bad key, bad input)."""

    def __init__(self, message: str, *, retryable: bool = False, code: str | int | None = None):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.code = code


@dataclass
class VoiceCloneResult:
    voice_id: str
    provider_file_id: str = ""  # the uploaded sample at the provider, deleted after training
    raw: dict = field(default_factory=dict)


@dataclass
class SynthesisResult:
    audio: bytes
    mime_type: str  # "audio/mpeg" or "audio/wav"
    duration_seconds: float
    characters: int = 0


@dataclass
class SynthesisTask:
    """A long text accepted for synthesis in the background (and billed at the provider)."""

    task_id: str
    characters: int = 0  # the billed characters, when the provider reports them


@dataclass
class RenderTicket:
    """What starting an avatar render returns. Synchronous providers return `video` at once."""

    provider_job_id: str
    video: bytes | None = None


@dataclass
class RenderPoll:
    status: str  # "processing", "completed" or "failed"
    progress: int = 0
    video: bytes | None = None
    error: str = ""


class VoiceProvider:
    name = ""
    paid = False
    # Whether the provider synthesizes long text as a background task (start, then check).
    long_synthesis = False

    def clone(
        self, sample_path: str, *, voice_id: str, profile: dict, on_upload: Callable[[str], None] | None = None
    ) -> VoiceCloneResult:
        """Clone a voice from the sample. Providers that upload the sample first call `on_upload`
        with the upload's id before cloning, so the caller can delete it whatever happens next."""
        raise NotImplementedError

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
        raise NotImplementedError

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
        """Submit a long text (a paid request, sent once); `check_long_synthesis` collects it."""
        raise NotImplementedError

    def check_long_synthesis(self, task_id: str) -> SynthesisResult | None:
        """One look at a submitted task: its audio when done, None while it is still processing.
        A task that failed raises a final ProviderError."""
        raise NotImplementedError

    def delete(self, voice_id: str) -> None:
        """Delete a cloned voice at the provider (no-op where voices are not stored)."""
        raise NotImplementedError

    def delete_sample(self, provider_file_id: str) -> None:
        """Delete the uploaded training sample at the provider (no-op where nothing is uploaded)."""
        raise NotImplementedError


class AvatarProvider:
    name = ""
    paid = False

    def start_render(
        self,
        portrait_path: str,
        audio_path: str,
        *,
        resolution: str = "480p",
        aspect: str = "1:1",
        options: dict | None = None,
    ) -> RenderTicket:
        raise NotImplementedError

    def check_render(self, provider_job_id: str) -> RenderPoll:
        raise NotImplementedError
