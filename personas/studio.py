"""The content studio: every piece of content (story, LinkedIn post, blog narration, email message,
voice sample) goes through `generate_content_with_persona`, which plans it (the platform-adapted
text, tier checks, a cost estimate) and queues one RENDER job. `run_render_job` does the work in
the worker in checkpointed steps, so a retried step neither redoes finished work nor charges twice:

  narrate each segment (persona voice or fallback), or a long narration as one provider task
  (submit once, poll the provider) -> one combined audio file
  -> avatar video (start render, poll the provider) -> assets (audio, video, subtitles)."""

import hashlib
import io
import json
import logging
import os
import re
import tempfile
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import av
import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import models, transaction
from django.utils import timezone

from media_pipeline import services as pipeline
from media_pipeline.models import AssetKind, JobKind, JobStatus, MediaAsset, MediaJob
from media_pipeline.providers import get_avatar_provider, get_voice_provider
from media_pipeline.providers.base import ProviderError
from media_pipeline.providers.http import LOST_REPLY
from media_pipeline.services import PipelineError
from media_pipeline.storage import delete_file, local_copy
from personas.models import Platform, PlatformAdaptation, Subscription, WritingPersona

log = logging.getLogger(__name__)


class ContentType(models.TextChoices):
    STORY = "story", "Story narration"
    LINKEDIN = "linkedin", "LinkedIn video post"
    BLOG = "blog", "Blog narration"
    EMAIL = "email", "Email video message"
    VOICE_SAMPLE = "voice_sample", "Voice sample"


# Content types that count towards the monthly generation allowance (a settings preview does not).
COUNTED_CONTENT_TYPES = [ContentType.STORY, ContentType.LINKEDIN, ContentType.BLOG, ContentType.EMAIL]
AVATAR_RESOLUTION = "480p"  # WaveSpeed's cheaper tier; sharp enough for feed video
SEGMENT_CHAR_LIMIT = 600  # narration chunk size: progress moves often and no request nears a sync limit
EXPLAINER_WORDS = 60  # the blog's explainer video narrates the opening (about 25 s)
PAUSE_SECONDS = {ContentType.STORY: 0.6}  # a breath between scenes; other chunks run on
DEFAULT_PAUSE_SECONDS = 0.15
AUDIO_RATE = 24_000
CAPTION_CHARS = 42  # the usual broadcast line length
AI_LABEL = "AI-generated"
VOICE_SAMPLE_LINE = "Hi, this is how I sound with these settings. Does it feel like me?"


# --- Planning: what will be generated, with which voice and avatar, at what cost -------------


@dataclass(frozen=True)
class GenerationRequest:
    content_type: str
    text: str = ""
    title: str = ""
    scenes: tuple[str, ...] = ()
    make_video: bool = False
    use_persona_voice: bool = True
    aspect_ratio: str = ""  # blank: the persona's default aspect ratio
    burn_captions: bool | None = None  # None: the persona's captions setting
    recipient_name: str = ""
    voice_settings: dict = field(default_factory=dict)


@dataclass
class GenerationPlan:
    content_type: str
    title: str
    text: str  # the finished text, adapted to the platform
    segments: list[str]  # narrated one synthesis each, in order
    video_segment_count: int  # the avatar narrates segments[:n]; 0 means no video
    use_persona_voice: bool
    voice_provider: str
    uses_persona_voice: bool
    avatar_provider: str
    aspect_ratio: str
    burn_captions: bool
    audio_seconds: float
    video_seconds: float
    voice_cost: Decimal
    video_cost: Decimal
    voice_settings: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def estimated_cost(self) -> Decimal:
        return self.voice_cost + self.video_cost

    @property
    def makes_video(self) -> bool:
        return self.video_segment_count > 0

    def job_params(self) -> dict:
        params = asdict(self)
        for name in ("voice_cost", "video_cost"):
            params[name] = str(params[name])
        return params

    @property
    def fingerprint(self) -> str:
        """Identifies exactly what the user confirmed; a changed request needs a new confirmation."""
        payload = json.dumps(self.job_params(), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:32]


def plan_generation(*, persona: WritingPersona, request: GenerationRequest) -> GenerationPlan:
    features = persona.user.subscription.features
    text, segments, video_count, notes = _text_and_segments(persona, request)
    if not segments:
        raise PipelineError("There is nothing to narrate yet: add some text.")
    use_persona_voice = request.use_persona_voice and features["voice"]
    voice_provider, uses_persona_voice = expected_voice(persona, use_persona_voice)
    notes.extend(_voice_notes(persona, request, features, uses_persona_voice))
    if not request.make_video:
        video_count = 0
    if video_count:
        _check_avatar_available(persona, features)
    audio_seconds = sum(pipeline.estimate_seconds_for_text(s) for s in segments)
    video_seconds = sum(pipeline.estimate_seconds_for_text(s) for s in segments[:video_count])
    if video_seconds > settings.WAVESPEED_LONG_MAX_SECONDS:
        raise PipelineError(
            f"Avatar videos can be at most {settings.WAVESPEED_LONG_MAX_SECONDS // 60} minutes long; "
            "shorten the text or turn the video off."
        )
    avatar_provider = (persona.avatar_provider or settings.AVATAR_PROVIDER) if video_count else ""
    return GenerationPlan(
        content_type=request.content_type,
        title=_title_for(request),
        text=text,
        segments=segments,
        video_segment_count=video_count,
        use_persona_voice=use_persona_voice,
        voice_provider=voice_provider,
        uses_persona_voice=uses_persona_voice,
        avatar_provider=avatar_provider,
        aspect_ratio=request.aspect_ratio or persona.avatar_aspect_ratio,
        burn_captions=persona.captions_enabled if request.burn_captions is None else request.burn_captions,
        audio_seconds=round(audio_seconds, 1),
        video_seconds=round(video_seconds, 1),
        voice_cost=pipeline.synthesis_cost(voice_provider, audio_seconds),
        video_cost=pipeline.avatar_cost(avatar_provider, video_seconds, AVATAR_RESOLUTION) if video_count else 0,
        voice_settings=dict(request.voice_settings),
        notes=notes,
    )


def expected_voice(persona: WritingPersona, use_persona_voice: bool) -> tuple[str, bool]:
    """The voice that will narrate: (provider name, is it the persona's own voice)."""
    if use_persona_voice and persona.voice_ready:
        return persona.speaking_voice_provider, True
    if settings.GTTS_ENABLED and settings.FALLBACK_VOICE_PROVIDER == "gtts":
        return "gtts", False
    return "offline", False


def _voice_notes(persona, request, features, uses_persona_voice) -> list[str]:
    if uses_persona_voice:
        return []
    if not request.use_persona_voice:
        return ["You chose the standard voice for this narration."]
    if not features["voice"]:
        return ["Your plan narrates with the standard voice; your own voice comes with Basic and above."]
    if persona.voice_opted_out:
        return ["You opted out of voice features, so the standard voice narrates."]
    return ["Your voice is not ready yet, so the standard voice narrates."]


def _check_avatar_available(persona: WritingPersona, features: dict) -> None:
    if not features["avatar"]:
        raise PipelineError("Avatar video is part of the Pro and Enterprise plans. Turn the video off or upgrade.")
    if persona.avatar_opted_out:
        raise PipelineError("You opted out of avatar features, so no video can be made. Turn the video off.")
    if not persona.avatar_ready or not persona.avatar_portrait:
        raise PipelineError("Your avatar is not ready yet. Create it first, or turn the video off.")


def _title_for(request: GenerationRequest) -> str:
    if request.title:
        return request.title[:150]
    if request.content_type == ContentType.EMAIL:
        return f"Video message for {request.recipient_name}"[:150]
    words = (request.text or " ".join(request.scenes)).split()
    opening = " ".join(words[:8]) + ("…" if len(words) > 8 else "")
    return f"{ContentType(request.content_type).label}: {opening}"[:150]


def _text_and_segments(persona: WritingPersona, request: GenerationRequest) -> tuple[str, list[str], int, list[str]]:
    """(finished text, narration segments, how many segments the video covers, notes)."""
    content_type = request.content_type
    if content_type == ContentType.STORY:
        # Each scene is narrated on its own so the story also has one clip per scene.
        scenes = [s.strip() for s in request.scenes if s.strip()]
        adaptation = platform_adaptation(persona, content_type)
        adapted, tags, shortened = adapt_story(scenes, adaptation)
        notes = []
        if shortened:
            limit = adaptation.target_length_words
            notes.append(f"The story is shortened to fit your Story length setting ({limit} words).")
        segments = [
            spoken for spoken in map(narration_text, adapted) if spoken
        ]  # an emoji-only scene has nothing to say
        text = "\n\n".join([*adapted, *([" ".join(tags)] if tags else [])])
        return text, segments, len(segments), notes
    if content_type == ContentType.VOICE_SAMPLE:
        line = " ".join(request.text.split()) or VOICE_SAMPLE_LINE
        return line, [line], 0, []
    adaptation = platform_adaptation(persona, content_type)
    if content_type == ContentType.BLOG:
        # The explainer video narrates the opening, which is also the start of the full narration.
        text = apply_emoji_policy(apply_tone(request.text.strip(), adaptation), adaptation)
        opening, rest = split_opening(narration_text(text), EXPLAINER_WORDS)
        explainer = split_for_narration(opening)
        return text, explainer + split_for_narration(rest), len(explainer), []
    body = request.text.strip()
    if content_type == ContentType.EMAIL:
        body = f"Hi {request.recipient_name.strip()},\n\n{body}"
    text = adapt_for_platform(body, adaptation)
    segments = split_for_narration(narration_text(text))
    return text, segments, len(segments), []


# --- Platform adaptation ---------------------------------------------------------------------

PLATFORM_FOR_CONTENT = {
    ContentType.LINKEDIN: Platform.LINKEDIN,
    ContentType.BLOG: Platform.BLOG,
    ContentType.EMAIL: Platform.EMAIL,
    ContentType.STORY: Platform.STORY,
}
EMOJI_RE = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0f\u200d]")
HASHTAG_RE = re.compile(r"(?<!\w)#(\w+)")
SENTENCE_END_RE = re.compile(r"(?<=[.!?…])\s+")
STOPWORDS = frozenset(
    "about above after again also always because been before being below between both could does doing "
    "down during each every from further have having here into itself just make more most much must "
    "never only other ours over same should some such than that their theirs them then there these "
    "they this those through under until very were what when where which while will with would your "
    "yours yourself".split()
)
EMOJI_FOR_POST = "✨"


def platform_adaptation(persona: WritingPersona, content_type: str) -> PlatformAdaptation | None:
    platform = PLATFORM_FOR_CONTENT.get(content_type)
    if platform is None:
        return None
    return persona.adaptations.filter(platform=platform).first()


def adapt_for_platform(text: str, adaptation: PlatformAdaptation | None) -> str:
    """Fit a post to the persona's platform habits: tone, length, emoji use and hashtags (the
    writer's own first, topped up from the post's topic words, on a closing line)."""
    if adaptation is None:
        return text
    own_tags = list(dict.fromkeys(f"#{tag}" for tag in HASHTAG_RE.findall(text)))
    body = apply_tone(HASHTAG_RE.sub(r"\1", text), adaptation)  # an inline #tag reads as its word
    body = apply_emoji_policy(trim_to_words(body, adaptation.target_length_words), adaptation)
    tags = own_tags + suggested_hashtags(body, adaptation.hashtags - len(own_tags), exclude=own_tags)
    return f"{body}\n\n{' '.join(tags)}" if tags else body


def adapt_story(scenes: list[str], adaptation: PlatformAdaptation | None) -> tuple[list[str], list[str], bool]:
    """The Story adaptation, scene by scene: tone and emoji use in each scene, the length over the
    whole story (whole scenes while they fit, then the last one cut at a sentence). Returns the
    scenes, the hashtags for a closing line (not narrated) and whether the story was shortened."""
    if adaptation is None:
        return scenes, [], False
    own_tags = list(dict.fromkeys(f"#{tag}" for scene in scenes for tag in HASHTAG_RE.findall(scene)))
    adapted, budget, shortened = [], adaptation.target_length_words, False
    for scene in scenes:
        if budget <= 0:
            shortened = True
            break
        # Emoji first, so the length counts words only.
        toned = apply_emoji_policy(apply_tone(HASHTAG_RE.sub(r"\1", scene), adaptation), adaptation)
        fitted = trim_to_words(toned, budget)
        shortened = shortened or fitted != toned
        adapted.append(fitted)
        budget -= len(fitted.split())
    tags = own_tags + suggested_hashtags(" ".join(adapted), adaptation.hashtags - len(own_tags), exclude=own_tags)
    return adapted, tags, shortened


# Tone keywords (the analysis writes labels such as "Formal and authoritative" or "Friendly and
# conversational"; writers may type their own) and what each does to the text.
FORMAL_TONE_RE = re.compile(r"\b(formal|authoritative|professional|academic)\b", re.IGNORECASE)
CASUAL_TONE_RE = re.compile(r"\b(casual|conversational|friendly|informal|relaxed)\b", re.IGNORECASE)
ENTHUSIASTIC_TONE_RE = re.compile(r"\b(enthusiastic|energetic|excited|upbeat)\b", re.IGNORECASE)
CONTRACTIONS = {
    "can't": "cannot",
    "won't": "will not",
    "shan't": "shall not",
    "ain't": "is not",
    "i'm": "I am",
    "let's": "let us",
}
SUFFIXES = {"n't": " not", "'re": " are", "'ve": " have", "'ll": " will"}
# "'s" is expanded only after these words ("it's" -> "it is", or "it has" before "been" / "got");
# after any other word it is a possessive.
IS_WORDS = frozenset({"it", "that", "there", "here", "what", "who", "he", "she"})
CONTRACTION_RE = re.compile(r"\b([A-Za-z]+)['\u2019](t|s|re|ve|ll|m)\b(?=\s+([A-Za-z]+)|)")
# Contracted only before another word, so a sentence never ends on "I'm." or "they're."
EXPANDED_RE = re.compile(
    r"\b(?:do|does|did|is|are|was|were|have|has|had|would|should|could) not\b|\b(?:cannot|will not)\b"
    r"|\b(?:I am|you are|we are|they are)\b(?=\s+[A-Za-z])",
    re.IGNORECASE,
)
SHORT_FORMS = {"cannot": "can't", "will not": "won't", "i am": "I'm"}


def apply_tone(text: str, adaptation: PlatformAdaptation | None) -> str:
    """The platform's tone as small, predictable edits: formal expands contractions and calms
    exclamation marks; casual contracts the common negations and "I am" / "we are"; enthusiastic
    ends on an exclamation when the text has none. Any other tone leaves the text as written."""
    tone = (adaptation.tone if adaptation else "") or ""
    if FORMAL_TONE_RE.search(tone):
        text = CONTRACTION_RE.sub(_expand, text)
        return re.sub(r"!+", ".", re.sub(r"\?!+", "?", text))
    if CASUAL_TONE_RE.search(tone):
        return EXPANDED_RE.sub(lambda m: _contract(m.group(0)), text)
    stripped = text.rstrip()
    if ENTHUSIASTIC_TONE_RE.search(tone) and "!" not in text and stripped.endswith("."):
        return f"{stripped[:-1]}!"
    return text


def _expand(match: re.Match) -> str:
    word, ending, following = match.group(1), match.group(2).lower(), (match.group(3) or "").lower()
    stem = word.lower()
    if f"{stem}'{ending}" in CONTRACTIONS:
        full = CONTRACTIONS[f"{stem}'{ending}"]
    elif ending == "t" and stem.endswith("n"):
        full = stem[:-1] + SUFFIXES["n't"]
    elif f"'{ending}" in SUFFIXES:
        full = stem + SUFFIXES[f"'{ending}"]
    elif ending == "s" and stem in IS_WORDS:
        full = f"{stem} {'has' if following in ('been', 'got') else 'is'}"
    else:
        return match.group(0)  # a possessive, or a contraction with more than one reading ("I'd")
    return _same_case(word, full)


def _contract(phrase: str) -> str:
    lowered = " ".join(phrase.lower().split())
    short = SHORT_FORMS.get(lowered)
    if short is None:
        first, second = lowered.split(" ")
        short = f"{first}n't" if second == "not" else f"{first}'re"
    return _same_case(phrase, short)


def _same_case(original: str, replacement: str) -> str:
    """Keep a capital first letter (sentence starts) as the writer had it."""
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def trim_to_words(text: str, max_words: int) -> str:
    """Cut at the last whole sentence that fits (or at a word, when even one sentence is too long)."""
    if len(text.split()) <= max_words:
        return text
    kept, count = [], 0
    for sentence in SENTENCE_END_RE.split(text):
        words = len(sentence.split())
        if count + words > max_words:
            break
        kept.append(sentence)
        count += words
    if kept:
        return " ".join(kept)
    return " ".join(text.split()[:max_words]) + "…"


def apply_emoji_policy(text: str, adaptation: PlatformAdaptation | None) -> str:
    """'none' strips emoji; 'light' keeps at most two of the writer's; more adds one if there is none."""
    policy = (adaptation.emoji_use if adaptation else "") or "none"
    if policy == "none":
        return _tidy_spaces(EMOJI_RE.sub("", text))
    if policy == "light":
        seen = 0

        def keep_two(match):
            nonlocal seen
            seen += 1
            return match.group(0) if seen <= 2 else ""

        return EMOJI_RE.sub(keep_two, text)
    return text if EMOJI_RE.search(text) else f"{text} {EMOJI_FOR_POST}"


def suggested_hashtags(text: str, count: int, *, exclude: list[str]) -> list[str]:
    """The post's most frequent topic words as hashtags."""
    if count <= 0:
        return []
    taken = {tag.lower() for tag in exclude}
    words = [w.lower() for w in re.findall(r"[A-Za-z]{4,}", text)]
    ranked = [w for w, _ in Counter(w for w in words if w not in STOPWORDS).most_common()]
    return [f"#{w.capitalize()}" for w in ranked if f"#{w}" not in taken][:count]


def narration_text(text: str) -> str:
    """What is spoken: the text without hashtags and emoji."""
    return _tidy_spaces(EMOJI_RE.sub("", HASHTAG_RE.sub("", text)))


def _tidy_spaces(text: str) -> str:
    """Close the gaps removed emoji and hashtags leave (double spaces, a space before a full stop)."""
    text = re.sub(r"[ \t]+([.,!?;:])", r"\1", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def split_opening(text: str, max_words: int) -> tuple[str, str]:
    """The first whole sentences up to `max_words` (at least one sentence), and the rest."""
    sentences = [s for s in SENTENCE_END_RE.split(text.strip()) if s]
    opening, count = [], 0
    for sentence in sentences:
        words = len(sentence.split())
        if opening and count + words > max_words:
            break
        opening.append(sentence)
        count += words
    return " ".join(opening), " ".join(sentences[len(opening) :])


def split_for_narration(text: str, limit: int = SEGMENT_CHAR_LIMIT) -> list[str]:
    """Chunks of at most `limit` characters, split at paragraphs, else sentences, else words."""
    pieces: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        if len(paragraph) <= limit:
            pieces.append(paragraph)
            continue
        for sentence in SENTENCE_END_RE.split(paragraph):
            pieces.extend(_split_words(sentence, limit) if len(sentence) > limit else [sentence])
    return _pack([p for p in pieces if p], limit)


def _split_words(text: str, limit: int) -> list[str]:
    return _pack(text.split(), limit)


def _pack(pieces: list[str], limit: int) -> list[str]:
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + 1 + len(piece) <= limit:
            chunks[-1] = f"{chunks[-1]} {piece}"
        else:
            chunks.append(piece)
    return chunks


# --- Tier allowance --------------------------------------------------------------------------


def generations_this_month(user) -> int:
    return (
        MediaJob.objects.filter(
            user=user, kind=JobKind.RENDER, content_type__in=COUNTED_CONTENT_TYPES, created_at__gte=month_start()
        )
        .exclude(status__in=[JobStatus.FAILED, JobStatus.CANCELLED])
        .count()
    )


def check_monthly_allowance(user) -> None:
    tier = user.subscription.tier
    cap = settings.TIERS[tier]["monthly_generations"]
    if cap is not None and generations_this_month(user) >= cap:
        raise PipelineError(
            f"You have used all {cap} generations in your {user.subscription.get_tier_display()} plan this month. "
            "Upgrade your plan or wait until next month."
        )


# --- The one entry point ---------------------------------------------------------------------


@dataclass
class PersonaContent:
    """Text now, audio and video once the job has run (the seed's text + audio + video)."""

    text: str
    job: MediaJob

    def _asset(self, key: str) -> MediaAsset | None:
        self.job.refresh_from_db(fields=["result"])  # the worker fills the result in
        pk = self.job.result.get(key)
        return MediaAsset.objects.filter(pk=pk).first() if pk else None

    @property
    def audio(self) -> MediaAsset | None:
        return self._asset("audio_asset")

    @property
    def video(self) -> MediaAsset | None:
        return self._asset("video_asset")

    @property
    def subtitles(self) -> MediaAsset | None:
        return self._asset("subtitles_asset")


def generate_content_with_persona(
    *, user, content_type: str, text: str = "", persona: WritingPersona | None = None, **options
) -> PersonaContent:
    """Plan a generation for the user's persona and queue it as one RENDER job."""
    persona = persona or _persona_for(user)
    request = GenerationRequest(content_type=content_type, text=text, **options)
    plan = plan_generation(persona=persona, request=request)
    return PersonaContent(text=plan.text, job=start_generation(persona=persona, plan=plan))


def start_generation(*, persona: WritingPersona, plan: GenerationPlan) -> MediaJob:
    with transaction.atomic():
        # Lock the subscription row so two tabs cannot both take the last generation of the month.
        Subscription.objects.select_for_update().get(user=persona.user)
        if plan.content_type in COUNTED_CONTENT_TYPES:
            check_monthly_allowance(persona.user)
        return pipeline.create_job(
            user=persona.user,
            persona=persona,
            kind=JobKind.RENDER,
            provider=plan.avatar_provider or plan.voice_provider,
            params=plan.job_params(),
            estimated_cost_usd=plan.estimated_cost,
            content_type=plan.content_type,
        )


def request_voice_sample(*, persona: WritingPersona, voice_settings: dict | None = None, text: str = "") -> MediaJob:
    """A short line in the persona voice, as a job: the settings page's 'hear it' (the preview line
    with unsaved voice settings) and the wizard's sentence of the user's choice (`text`)."""
    request = GenerationRequest(content_type=ContentType.VOICE_SAMPLE, text=text, voice_settings=voice_settings or {})
    return start_generation(persona=persona, plan=plan_generation(persona=persona, request=request))


def _persona_for(user) -> WritingPersona:
    persona = WritingPersona.objects.filter(user=user).first()
    if persona is None:
        raise PipelineError("Create your persona first.")
    return persona


# --- The worker side -------------------------------------------------------------------------


def run_render_job(job: MediaJob) -> None:
    """One step of a RENDER job; re-entered after provider polls and retries."""
    try:
        _run_render_steps(job)
    except ProviderError as exc:
        if not (exc.retryable and job.attempts < pipeline.MAX_ATTEMPTS):
            _discard_parts(job)
        raise
    except Exception:
        _discard_parts(job)
        raise


def _run_render_steps(job: MediaJob) -> None:
    persona = _with_voice_settings(job.persona, job.params.get("voice_settings") or {})
    if "audio_asset" not in job.result:
        if not _narrate_segments(job, persona):
            return  # the voice provider is still narrating; the job polls again
        _save_audio_assets(job, persona)
    if job.params["video_segment_count"] and "video_asset" not in job.result:
        video = _render_avatar_video(job, persona)
        if video is None:
            return  # the provider is still rendering; the job polls again
        _save_video_assets(job, persona, video)
    _discard_parts(job)
    pipeline.succeed_job(job)


def _with_voice_settings(persona: WritingPersona, voice_settings: dict) -> WritingPersona:
    """Apply a voice sample's unsaved settings to this in-memory copy only (never saved)."""
    for name in ("voice_emotion", "voice_speed", "voice_pitch", "voice_volume"):
        if name in voice_settings:
            setattr(persona, name, voice_settings[name])
    return persona


def _checkpoint(job: MediaJob, **values) -> None:
    job.result.update(values)
    job.save(update_fields=["result"])


def _narrate_segments(job: MediaJob, persona: WritingPersona) -> bool:
    """Narrate every segment once; finished parts are stored and skipped on a retry. A long
    narration in a voice that synthesizes long text in the background is one provider task
    instead (see `_narrate_long`). False while that task runs: the job polls again."""
    long_from = _long_narration_start(job, persona)
    if long_from is not None:
        _narrate_each(job, persona, until=long_from)
        done = _narrate_long(job, persona, long_from)
        if done is not None:
            return done
    _narrate_each(job, persona, until=len(job.params["segments"]))
    return True


def _narrate_each(job: MediaJob, persona: WritingPersona, *, until: int) -> None:
    segments = job.params["segments"]
    parts = job.result.setdefault("parts", [])
    long = job.result.get("long_narration") or {}
    for index in range(len(parts), until):
        # After a long narration's lost submit, its text may be billed already: no second
        # paid synthesis of it in the persona voice.
        standard_voice = long.get("standard_voice") and index >= long["first"]
        speech, provider, used_persona_voice = pipeline.speak_for_persona(
            persona,
            segments[index],
            job=job,
            content_type=job.content_type,
            use_persona_voice=job.params["use_persona_voice"] and not standard_voice,
            usage_key=f"segment-{index}",
        )
        _store_part(job, index, speech, provider, used_persona_voice)
        pipeline.heartbeat(job, 5 + 55 * (index + 1) // len(segments))


def _store_part(job: MediaJob, index: int, speech, provider: str, used_persona_voice: bool, **extra) -> None:
    parts = job.result.setdefault("parts", [])
    extension = ".wav" if "wav" in speech.mime_type else ".mp3"
    name = default_storage.save(
        f"private/generated/parts/job{job.pk}-{index}-{uuid.uuid4().hex[:8]}{extension}",
        ContentFile(speech.audio),
    )
    parts.append(
        {
            "file": name,
            "mime_type": speech.mime_type,
            "seconds": speech.duration_seconds,
            "provider": provider,
            "persona_voice": used_persona_voice,
            **extra,
        }
    )
    _checkpoint(job, parts=parts)


# --- Long narration: one background task at the voice provider --------------------------------


def _long_narration_start(job: MediaJob, persona: WritingPersona) -> int | None:
    """The index of the first segment narrated as one background task (the rest of the text),
    or None when every segment is synthesized on its own. A blog's narration, or any text over
    the provider's one-request limit, in a persona voice that offers background synthesis.
    The segments an avatar video narrates stay separate: the video and its captions need them.
    A story keeps one clip per scene, so it is always narrated scene by scene."""
    state = job.result.get("long_narration")
    if state is not None:
        return None if state.get("fallback") else state["first"]
    if job.content_type in (ContentType.STORY, ContentType.VOICE_SAMPLE):
        return None
    if not (job.params["use_persona_voice"] and persona.voice_ready):
        return None
    if not get_voice_provider(persona.speaking_voice_provider).long_synthesis:
        return None
    first = job.params["video_segment_count"]
    if len(job.result.get("parts") or []) > first:
        return None  # already narrated segment by segment
    text = _long_narration_text(job, first)
    if not text or len(text) > settings.MINIMAX_ASYNC_TEXT_LIMIT:
        return None  # too long for one task: narrated in pieces, each in one request
    if job.content_type != ContentType.BLOG and len(text) <= settings.MINIMAX_SYNC_TEXT_LIMIT:
        return None
    return first


def _long_narration_text(job: MediaJob, first: int) -> str:
    return " ".join(job.params["segments"][first:])


def _narrate_long(job: MediaJob, persona: WritingPersona, first: int) -> bool | None:
    """Submit the long narration once, then look at it once per poll. True when its audio is a
    part, False while the provider works, None when the persona voice refused it (the segments
    are then narrated one by one, with the usual fallback voice)."""
    state = job.result.get("long_narration")
    if state is None:
        return _submit_long_narration(job, persona, first)
    if state.get("done"):
        return True
    if "task_id" not in state:
        # An earlier attempt stopped during the submit (its worker died): the provider may have
        # accepted and billed the text, so it is not sent again.
        log.warning("job %s: long narration submit was interrupted; using the standard voice", job.pk)
        pipeline.checkpoint_job(
            job, result={**job.result, "long_narration": {**state, "fallback": True, "standard_voice": True}}
        )
        return None
    try:
        speech = get_voice_provider(state["provider"]).check_long_synthesis(state["task_id"])
    except ProviderError as exc:
        if not exc.retryable:
            raise
        # The task is safe at the provider; a busy or unreachable API is simply asked again.
        log.warning("job %s: narration task %s not checked (%s); polling again", job.pk, state["task_id"], exc.message)
        speech = None
    if speech is None:
        if timezone.now() > datetime.fromisoformat(state["give_up_at"]):
            minutes = settings.MINIMAX_ASYNC_MAX_WAIT_SECONDS / 60
            raise PipelineError(f"The voice provider did not finish the narration within {minutes:g} minutes.")
        pipeline.wait_for_provider(job, progress=min(55, job.progress + 3))
        return False
    seconds = speech.duration_seconds
    pipeline.record_usage(
        user=persona.user,
        persona=persona,
        job=job,
        kind="voice_synthesis",
        content_type=job.content_type,
        provider=state["provider"],
        media_seconds=seconds,
        cost_usd=pipeline.synthesis_cost(state["provider"], seconds),
        idempotency_key=f"job:{job.pk}:speech:{job.content_type}:task-{state['task_id']}",
    )
    # Marked done in the same write that adds the part, so a re-run never adds it twice.
    job.result["long_narration"] = {**state, "done": True}
    _store_part(job, first, speech, state["provider"], True, characters=state["characters"])
    pipeline.heartbeat(job, 60)
    return True


def _submit_long_narration(job: MediaJob, persona: WritingPersona, first: int) -> bool | None:
    provider_name = persona.speaking_voice_provider
    provider = get_voice_provider(provider_name)
    submitting = {"first": first, "provider": provider_name}
    # Marked before sending, so a step re-run after a worker died mid-submit does not send it
    # again; the lease covers the one request.
    http_seconds = settings.HTTP_CONNECT_TIMEOUT + settings.HTTP_READ_TIMEOUT
    pipeline.heartbeat(job, 8, lease_seconds=settings.JOB_LEASE_SECONDS + http_seconds)
    pipeline.checkpoint_job(job, result={**job.result, "long_narration": submitting})
    try:
        task = provider.start_long_synthesis(
            _long_narration_text(job, first),
            voice_id=persona.voice_id,
            emotion=persona.voice_emotion,
            speed=persona.voice_speed,
            pitch=persona.voice_pitch,
            volume=persona.voice_volume,
        )
    except ProviderError as exc:
        if exc.retryable:
            # Refused before it was accepted (rate limit, busy): nothing was billed, so the
            # job's retry submits it.
            pipeline.checkpoint_job(job, result={k: v for k, v in job.result.items() if k != "long_narration"})
            raise
        log.warning("persona voice refused the long narration (%s); narrating segment by segment", exc.message)
        refused = {**submitting, "fallback": True, "standard_voice": exc.code == LOST_REPLY}
        pipeline.checkpoint_job(job, result={**job.result, "long_narration": refused})
        return None
    # The provider gets its longest wait, and the job the time to poll once more after it.
    give_up_at = timezone.now() + timedelta(seconds=settings.MINIMAX_ASYNC_MAX_WAIT_SECONDS)
    deadline = give_up_at + timedelta(seconds=settings.PROVIDER_POLL_SECONDS + settings.JOB_LEASE_SECONDS)
    submitted = {
        **submitting,
        "task_id": task.task_id,
        "characters": task.characters,
        "give_up_at": give_up_at.isoformat(),
    }
    # The task id is saved with the release, in one write, before this step ends.
    pipeline.wait_for_provider(
        job,
        progress=10,
        result={**job.result, "long_narration": submitted},
        deadline=max(deadline, job.deadline) if job.deadline else deadline,
    )
    return False


def _save_audio_assets(job: MediaJob, persona: WritingPersona) -> None:
    parts = job.result["parts"]
    pause = pause_seconds(job.content_type)
    samples = join_audio([decode_mono(part["file"]) for part in parts], pause)
    pipeline.heartbeat(job, 62)
    all_persona_voice = all(part["persona_voice"] for part in parts)
    title = job.params["title"]
    if job.content_type == ContentType.VOICE_SAMPLE:
        _remove_older_voice_samples(persona)
        title = "Voice sample"
    audio = _create_asset(
        job,
        kind=AssetKind.AUDIO,
        title=title if job.content_type == ContentType.VOICE_SAMPLE else f"{title} · narration",
        content=encode_mp3(samples),
        extension=".mp3",
        mime_type="audio/mpeg",
        seconds=len(samples) / AUDIO_RATE,
        provider=_providers_label(parts),
        used_persona_voice=all_persona_voice,
    )
    if job.content_type == ContentType.STORY:
        _keep_scene_clips(job, title)
    # Kept on the job too, so adoption figures outlive a deleted library file.
    _checkpoint(
        job, audio_asset=audio.pk, audio_seconds=round(audio.duration_seconds, 2), persona_voice=all_persona_voice
    )
    pipeline.heartbeat(job, 65)


def _keep_scene_clips(job: MediaJob, title: str) -> None:
    """A story keeps one clip per scene (the part files become library assets)."""
    for number, part in enumerate(job.result["parts"], start=1):
        MediaAsset.objects.create(
            user=job.user,
            persona=job.persona,
            job=job,
            kind=AssetKind.AUDIO,
            content_type=job.content_type,
            title=f"{title} · scene {number}"[:200],
            file=part["file"],
            mime_type=part["mime_type"],
            duration_seconds=part["seconds"],
            provider=part["provider"],
            used_persona_voice=part["persona_voice"],
        )
        part["kept"] = True


def _remove_older_voice_samples(persona: WritingPersona) -> None:
    """Only the newest voice sample is worth keeping."""
    for asset in MediaAsset.objects.filter(persona=persona, content_type=ContentType.VOICE_SAMPLE):
        delete_media_asset(asset=asset)


def _providers_label(parts: list[dict]) -> str:
    return ",".join(dict.fromkeys(part["provider"] for part in parts))[:50]


def _render_avatar_video(job: MediaJob, persona: WritingPersona) -> bytes | None:
    """Start the render (once) and return the video, or None while the provider works."""
    provider = get_avatar_provider(job.params["avatar_provider"])
    if job.provider_job_id:
        poll = provider.check_render(job.provider_job_id)
        if poll.status == "failed":
            raise PipelineError(poll.error or "The avatar provider could not render this video.")
        if poll.status != "completed":
            pipeline.wait_for_provider(job, progress=max(70, min(95, poll.progress)))
            return None
        return _finished_video(job, persona, provider, poll.video)
    count = job.params["video_segment_count"]
    parts = job.result["parts"][:count]
    pause = pause_seconds(job.content_type)
    spoken = zip(job.params["segments"][:count], parts, strict=True)
    cues = caption_cues([(text, part["seconds"]) for text, part in spoken], pause)
    video_audio = encode_mp3(join_audio([decode_mono(part["file"]) for part in parts], pause))
    _checkpoint(job, captions=cues, video_seconds=round(sum(p["seconds"] for p in parts) + pause * (count - 1), 2))
    pipeline.heartbeat(job, 70)
    with (
        local_copy(persona.avatar_portrait, suffix=".png") as portrait_path,
        temporary_file(video_audio, suffix=".mp3") as audio_path,
        _background_image_copy(persona) as background_path,
    ):
        ticket = provider.start_render(
            portrait_path,
            audio_path,
            resolution=AVATAR_RESOLUTION,
            aspect=job.params["aspect_ratio"],
            options=_render_options(job, persona, cues, background_path),
        )
    if ticket.video is None:
        pipeline.wait_for_provider(
            job, progress=72, provider_job_id=ticket.provider_job_id, media_seconds=job.result["video_seconds"]
        )
        return None
    job.provider_job_id = ticket.provider_job_id
    job.save(update_fields=["provider_job_id"])
    return _finished_video(job, persona, provider, ticket.video)


def _finished_video(job: MediaJob, persona: WritingPersona, provider, video: bytes) -> bytes:
    """A hosted model returns the portrait as it framed it, without captions or label: put it in
    the chosen aspect on the avatar background, in the persona's framing and style, with the
    captions and the label burned in, as the offline renderer draws its own video."""
    if getattr(provider, "draws_final_frame", False):
        return video
    from media_pipeline import avatar_render  # OpenCV and FFmpeg load in the worker only

    # Re-encoding runs faster than real time; the lease covers one video length on top.
    pipeline.heartbeat(job, 96, lease_seconds=settings.JOB_LEASE_SECONDS + job.result.get("video_seconds", 0))
    with _background_image_copy(persona) as background_path:
        options = _render_options(job, persona, job.result.get("captions") or [], background_path)
        try:
            return avatar_render.finish_hosted_video(
                video,
                aspect=job.params["aspect_ratio"],
                size=avatar_render.SHORT_SIDES[AVATAR_RESOLUTION],
                **options,
            )
        except avatar_render.RenderError as exc:
            raise PipelineError(str(exc)) from exc


def _render_options(job: MediaJob, persona: WritingPersona, cues: list, background_path: str) -> dict:
    """The persona's avatar settings. The offline renderer draws all of them; hosted models take
    the style as a prompt, and `_finished_video` draws the rest on their video."""
    return {
        "background": persona.avatar_background,
        "background_image": background_path,
        "style": persona.avatar_style,
        "framing": persona.avatar_framing,
        "captions": [tuple(cue) for cue in cues] if job.params["burn_captions"] else [],
        "label": AI_LABEL,
    }


@contextmanager
def _background_image_copy(persona: WritingPersona):
    if not persona.avatar_background_image:
        yield ""
        return
    with local_copy(persona.avatar_background_image, suffix=".png") as path:
        yield path


@contextmanager
def temporary_file(data: bytes, *, suffix: str):
    fd, path = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield path
    finally:
        os.unlink(path)


def _save_video_assets(job: MediaJob, persona: WritingPersona, video: bytes) -> None:
    seconds = job.result.get("video_seconds", 0)
    provider = job.params["avatar_provider"]
    pipeline.record_usage(
        user=job.user,
        persona=persona,
        job=job,
        kind="avatar_video",
        content_type=job.content_type,
        provider=provider,
        media_seconds=seconds,
        cost_usd=pipeline.avatar_cost(provider, seconds, AVATAR_RESOLUTION),
        idempotency_key=f"job:{job.pk}:avatar_video",
    )
    title = f"{job.params['title']} · {AI_LABEL} video"
    parts = job.result["parts"][: job.params["video_segment_count"]]
    asset = _create_asset(
        job,
        kind=AssetKind.VIDEO,
        title=title,
        content=label_video(video, title=title, comment=f"{AI_LABEL} with a synthetic avatar and voice."),
        extension=".mp4",
        mime_type="video/mp4",
        seconds=seconds,
        provider=provider,
        used_persona_voice=all(part["persona_voice"] for part in parts),
        used_persona_avatar=True,
    )
    subtitles = _create_asset(
        job,
        kind=AssetKind.SUBTITLES,
        title=f"{job.params['title']} · captions",
        content=srt_text(job.result["captions"]).encode(),
        extension=".srt",
        mime_type="application/x-subrip",
        seconds=seconds,
        provider=provider,
    )
    _checkpoint(job, video_asset=asset.pk, subtitles_asset=subtitles.pk, label=AI_LABEL)
    pipeline.heartbeat(job, 98)


def _create_asset(job: MediaJob, *, kind, title, content: bytes, extension, mime_type, seconds, **flags) -> MediaAsset:
    asset = MediaAsset(
        user=job.user,
        persona=job.persona,
        job=job,
        kind=kind,
        content_type=job.content_type,
        title=title[:200],
        mime_type=mime_type,
        duration_seconds=round(seconds, 2),
        **flags,
    )
    asset.file.save(f"{job.content_type}-{job.pk}-{uuid.uuid4().hex[:8]}{extension}", ContentFile(content), save=False)
    asset.save()
    return asset


def _discard_parts(job: MediaJob) -> None:
    """Intermediate clips are removed once the job ends (a story's scene clips are kept as assets)."""
    parts = job.result.get("parts") or []
    for part in parts:
        if not part.get("kept") and not part.get("discarded"):
            default_storage.delete(part["file"])
            part["discarded"] = True
    if parts:
        _checkpoint(job, parts=parts)


# --- Audio, captions and labels --------------------------------------------------------------


def pause_seconds(content_type: str) -> float:
    return PAUSE_SECONDS.get(content_type, DEFAULT_PAUSE_SECONDS)


def decode_mono(name: str) -> np.ndarray:
    """Decode a stored audio file to mono float32 at AUDIO_RATE (whatever the provider returned)."""
    with default_storage.open(name) as f:
        data = f.read()
    chunks = []
    resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
    with av.open(io.BytesIO(data)) as container:
        for frame in container.decode(audio=0):
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
    chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


def join_audio(clips: list[np.ndarray], pause: float) -> np.ndarray:
    silence = np.zeros(int(pause * AUDIO_RATE), dtype=np.float32)
    joined: list[np.ndarray] = []
    for index, clip in enumerate(clips):
        if index:
            joined.append(silence)
        joined.append(clip.astype(np.float32))
    return np.concatenate(joined) if joined else np.zeros(0, dtype=np.float32)


def encode_mp3(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=AUDIO_RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            np.clip(samples, -1, 1).reshape(1, -1).astype(np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = AUDIO_RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def caption_lines(text: str, width: int = CAPTION_CHARS) -> list[str]:
    return _pack(text.split(), width)


def caption_cues(parts: list[tuple[str, float]], pause: float) -> list[list]:
    """[start, end, line] per caption line; each part's time is shared by its lines by length."""
    cues, offset = [], 0.0
    for text, seconds in parts:
        lines = caption_lines(text)
        total = sum(len(line) for line in lines) or 1
        start = offset
        for line in lines:
            end = start + seconds * len(line) / total
            cues.append([round(start, 3), round(end, 3), line])
            start = end
        offset += seconds + pause
    return cues


def _srt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def srt_text(cues: list) -> str:
    blocks = [
        f"{number}\n{_srt_time(start)} --> {_srt_time(end)}\n{line}\n"
        for number, (start, end, line) in enumerate(cues, start=1)
    ]
    return "\n".join(blocks)


def label_video(video: bytes, *, title: str, comment: str) -> bytes:
    """Write the AI-generated label into the MP4's metadata (a remux, no re-encode), with the
    index up front so browsers can start playing before the whole file arrives. The faststart
    pass rewrites the file, so the output is a real file rather than a buffer."""
    with tempfile.TemporaryDirectory() as folder:
        out_path = os.path.join(folder, "labelled.mp4")
        try:
            with (
                av.open(io.BytesIO(video)) as source,
                av.open(out_path, "w", format="mp4", options={"movflags": "+faststart"}) as target,
            ):
                target.metadata.update({"title": title, "comment": comment})
                streams = {
                    s.index: target.add_stream_from_template(s) for s in source.streams if s.type in ("video", "audio")
                }
                for packet in source.demux():
                    if packet.dts is None or packet.stream.index not in streams:
                        continue
                    packet.stream = streams[packet.stream.index]
                    target.mux(packet)
        except av.FFmpegError as exc:
            log.warning("could not label the video (%s); keeping it as rendered", exc)
            return video
        with open(out_path, "rb") as f:
            return f.read()


# --- The media library -----------------------------------------------------------------------


# Video first, then audio, then captions: the order a job's result is best read in.
ASSET_DISPLAY_ORDER = models.Case(
    models.When(kind=AssetKind.VIDEO, then=0), models.When(kind=AssetKind.AUDIO, then=1), default=2
)


def job_assets_in_display_order():
    return MediaAsset.objects.order_by(ASSET_DISPLAY_ORDER, "pk")


def library_assets(user, *, kind: str = "", content_type: str = ""):
    assets = MediaAsset.objects.filter(user=user).exclude(content_type=ContentType.VOICE_SAMPLE)
    if kind:
        assets = assets.filter(kind=kind)
    if content_type:
        assets = assets.filter(content_type=content_type)
    return assets.order_by("-created_at", "-pk")


def delete_media_asset(*, asset: MediaAsset) -> None:
    """Delete the file as well as the row: a library delete leaves nothing behind."""
    delete_file(asset.file)
    asset.delete()


def month_start(now: datetime | None = None) -> datetime:
    return (now or timezone.now()).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
