"""Writing-style analysis: a deterministic local analyser that works offline, plus an optional
enrichment by an OpenAI-compatible chat endpoint (settings.LLM_BASE_URL / LLM_API_KEY / LLM_MODEL).

The local result is always computed first and is complete on its own; the model may only refine
the descriptive labels (tone, voice, engagement, favourite phrases), never the measured numbers."""

import json
import logging
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from personas.models import Platform, PlatformAdaptation, WritingPersona

log = logging.getLogger(__name__)

WORD_RE = re.compile(r"[A-Za-z][A-Za-z'’-]*")
SENTENCE_END_RE = re.compile(r"(?<=[.!?…])[\"')\]]*\s+|\n{2,}")
HASHTAG_RE = re.compile(r"(?<!\w)#\w+")
MENTION_RE = re.compile(r"(?<![\w@])@\w+")
LIST_ITEM_RE = re.compile(r"^\s*(?:[-*•–]|\d+[.)])\s+\S", re.MULTILINE)
EMOJI_RE = re.compile("[\U0001f300-\U0001faff\U00002600-\U000027bf\U0001f000-\U0001f2ff]")
ACRONYM_RE = re.compile(r"\b[A-Z]{2,5}s?\b")
SAMPLE_SEPARATOR_RE = re.compile(r"^\s*-{3,}\s*$", re.MULTILINE)

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most my
    myself no nor not now of off on once only or other our ours ourselves out over own same she should so
    some such than that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you your
    yours yourself yourselves it's i'm don't can't won't that's""".split()
)
CONTRACTION_RE = re.compile(r"\b\w+['’](?:s|t|re|ve|ll|d|m)\b", re.IGNORECASE)
FIRST_SINGULAR = frozenset({"i", "me", "my", "mine", "myself", "i'm", "i've", "i'll", "i'd"})
FIRST_PLURAL = frozenset({"we", "us", "our", "ours", "ourselves", "we're", "we've", "we'll"})
SECOND_PERSON = frozenset({"you", "your", "yours", "yourself", "you're", "you've", "you'll"})
FORMAL_MARKERS = frozenset(
    {"furthermore", "moreover", "therefore", "consequently", "however", "thus", "hence", "whereas", "nevertheless"}
)
ENTHUSIASM_WORDS = frozenset(
    {"amazing", "awesome", "love", "excited", "incredible", "fantastic", "thrilled", "great", "wonderful", "best"}
)
CALL_TO_ACTION = (
    "let me know",
    "comment",
    "share",
    "subscribe",
    "sign up",
    "click",
    "join",
    "follow",
    "what do you think",
    "tell me",
    "reply",
)
JARGON = frozenset(
    """synergy leverage leveraging scalable scalability stakeholder stakeholders paradigm bandwidth ecosystem
    disrupt disruptive disruption optimize optimise optimization optimisation pipeline deliverable deliverables
    actionable roadmap alignment onboarding monetize monetise roi kpi kpis b2b b2c saas api apis workflow
    workflows holistic granular incentivize ideate learnings omnichannel thought-leadership value-add
    best-in-class mission-critical low-hanging""".split()
)

# Where each platform starts before the writer's own habits adjust it.
PLATFORM_BASELINES = {
    Platform.LINKEDIN: {"words": 220, "hashtags": 3, "formality": 1, "emoji": "light"},
    Platform.FACEBOOK: {"words": 90, "hashtags": 1, "formality": -1, "emoji": "moderate"},
    Platform.BLOG: {"words": 1200, "hashtags": 0, "formality": 0, "emoji": "none"},
    Platform.EMAIL: {"words": 200, "hashtags": 0, "formality": 1, "emoji": "none"},
    Platform.STORY: {"words": 700, "hashtags": 0, "formality": -1, "emoji": "none"},
}
FORMALITY_LABELS = ["casual", "neutral", "formal"]
EMOJI_LEVELS = ["none", "light", "moderate"]


@dataclass
class StyleAnalysis:
    tone: str
    voice: str
    complexity: str
    readability_grade: float
    engagement_level: str
    sentence_structure: dict
    vocabulary: dict
    patterns: dict
    adaptations: dict[str, dict] = field(default_factory=dict)
    source: str = "local"


class AnalysisError(ValueError):
    """The text cannot be analysed (e.g. there are no sentences in it)."""


# --- Measuring ---------------------------------------------------------------------------------


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_END_RE.split(text) if s and WORD_RE.search(s)]


def words_of(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in WORD_RE.findall(text)]


def count_syllables(word: str) -> int:
    """A vowel-group heuristic (silent final e dropped): good enough for a readability grade."""
    word = word.lower().strip("'-")
    groups = re.findall(r"[aeiouy]+", word)
    count = len(groups)
    if word.endswith("e") and not word.endswith(("le", "ee", "ye")) and count > 1:
        count -= 1
    return max(1, count)


def flesch_kincaid_grade(words: list[str], sentence_count: int) -> float:
    syllables = sum(count_syllables(w) for w in words)
    grade = 0.39 * len(words) / sentence_count + 11.8 * syllables / len(words) - 15.59
    return round(max(0.0, grade), 1)


def complexity_label(grade: float) -> str:
    if grade < 6:
        return "Simple"
    if grade < 10:
        return "Moderate"
    if grade < 14:
        return "Advanced"
    return "Academic"


def sentence_structure(sentences: list[str]) -> dict:
    lengths = [len(words_of(s)) for s in sentences]
    mean = statistics.fmean(lengths)
    variance = statistics.pvariance(lengths) if len(lengths) > 1 else 0.0
    # Rhythm: a high spread of sentence lengths reads as varied, a low one as steady.
    rhythm = "varied" if variance**0.5 > mean * 0.5 else "steady"
    return {
        "sentences": len(lengths),
        "mean_length": round(mean, 1),
        "variance": round(variance, 1),
        "shortest": min(lengths),
        "longest": max(lengths),
        "rhythm": rhythm,
    }


def favourite_phrases(words: list[str], limit: int = 5) -> list[str]:
    """Repeated two- and three-word phrases that are not made of stopwords only."""
    counts: Counter[str] = Counter()
    for size in (3, 2):
        for i in range(len(words) - size + 1):
            gram = words[i : i + size]
            # A phrase worth reusing neither starts nor ends on a filler word ("businesses and the").
            if gram[0] in STOPWORDS or gram[-1] in STOPWORDS:
                continue
            counts[" ".join(gram)] += 1
    repeated = [(phrase, n) for phrase, n in counts.most_common() if n >= 2]
    chosen: list[str] = []
    for phrase, _ in repeated:
        # "content strategy" and "about content strategy" are one habit: keep the more frequent.
        if not any(phrase in other or other in phrase for other in chosen):
            chosen.append(phrase)
        if len(chosen) == limit:
            break
    return chosen


def vocabulary(text: str, words: list[str]) -> dict:
    distinct = set(words)
    jargon = sorted({w for w in words if w in JARGON} | {a.lower() for a in ACRONYM_RE.findall(text)} & JARGON)
    acronyms = sorted(set(ACRONYM_RE.findall(text)))
    type_token = len(distinct) / len(words)
    # Root TTR (types / sqrt(tokens)) is far less sensitive to text length than plain TTR.
    root_ttr = len(distinct) / len(words) ** 0.5
    richness = "rich" if root_ttr >= 7 else "moderate" if root_ttr >= 5 else "plain"
    return {
        "words": len(words),
        "distinct_words": len(distinct),
        "type_token_ratio": round(type_token, 3),
        "richness": richness,
        "richness_score": round(root_ttr, 2),
        "average_word_length": round(statistics.fmean(len(w) for w in words), 2),
        "jargon": jargon[:10],
        "acronyms": acronyms[:10],
        "jargon_ratio": round(sum(1 for w in words if w in JARGON) / len(words), 4),
        "favourite_phrases": favourite_phrases(words),
    }


def patterns(text: str, sentences: list[str]) -> dict:
    questions = sum(1 for s in sentences if s.rstrip("\"')]").endswith("?"))
    exclamations = sum(1 for s in sentences if s.rstrip("\"')]").endswith("!"))
    per_100 = 100 / len(sentences)
    return {
        "questions": questions,
        "questions_per_100_sentences": round(questions * per_100, 1),
        "exclamations": exclamations,
        "list_items": len(LIST_ITEM_RE.findall(text)),
        "emojis": len(EMOJI_RE.findall(text)),
        "hashtags": len(HASHTAG_RE.findall(text)),
        "top_hashtags": [tag for tag, _ in Counter(t.lower() for t in HASHTAG_RE.findall(text)).most_common(5)],
        "mentions": len(MENTION_RE.findall(text)),
    }


# --- Describing ----------------------------------------------------------------------------


def formality_score(text: str, words: list[str]) -> int:
    """-1 casual, 0 neutral, +1 formal, from contractions, formal connectives and word length."""
    contractions = len(CONTRACTION_RE.findall(text)) / len(words)
    formal = sum(1 for w in words if w in FORMAL_MARKERS) / len(words)
    long_words = sum(1 for w in words if len(w) >= 8) / len(words)
    score = 0
    if contractions > 0.03 or EMOJI_RE.search(text):
        score -= 1
    if formal > 0.004 or (contractions < 0.005 and long_words > 0.16):
        score += 1
    return max(-1, min(1, score))


def tone_label(text: str, words: list[str], pattern: dict, sentence_count: int, formality: int) -> str:
    enthusiasm = sum(1 for w in words if w in ENTHUSIASM_WORDS) / len(words)
    if pattern["exclamations"] / sentence_count > 0.15 or enthusiasm > 0.012 or pattern["emojis"] > 2:
        return "Enthusiastic"
    if formality > 0:
        return "Formal and authoritative"
    if pattern["questions"] / sentence_count > 0.12:
        return "Curious and conversational"
    if formality < 0:
        return "Friendly and conversational"
    return "Clear and informative"


def narrative_voice(words: list[str]) -> str:
    counts = {
        "first person singular": sum(1 for w in words if w in FIRST_SINGULAR),
        "first person plural": sum(1 for w in words if w in FIRST_PLURAL),
        "second person": sum(1 for w in words if w in SECOND_PERSON),
    }
    dominant, n = max(counts.items(), key=lambda item: item[1])
    if n / len(words) < 0.01:
        return "Third person, impersonal"
    label = dominant[0].upper() + dominant[1:]
    # Many "you"s alongside "I" is the direct, talking-to-the-reader voice.
    if dominant != "second person" and counts["second person"] >= n * 0.5:
        return f"{label}, speaking to the reader"
    return label


def engagement_label(text: str, pattern: dict, sentence_count: int, words: list[str]) -> str:
    lowered = text.lower()
    calls = sum(lowered.count(phrase) for phrase in CALL_TO_ACTION)
    you = sum(1 for w in words if w in SECOND_PERSON) / len(words)
    score = (
        pattern["questions"] / sentence_count * 4
        + pattern["exclamations"] / sentence_count * 2
        + min(calls, 5) * 0.3
        + you * 20
        + min(pattern["emojis"], 5) * 0.1
    )
    if score >= 1.5:
        return "High"
    if score >= 0.6:
        return "Medium"
    return "Low"


def platform_adaptation(platform: str, *, formality: int, pattern: dict, sentence_count: int) -> dict:
    """Start from the platform's norms and lean towards the writer's own habits."""
    base = PLATFORM_BASELINES[platform]
    level = max(-1, min(1, base["formality"] + formality))
    emoji_index = EMOJI_LEVELS.index(base["emoji"])
    if pattern["emojis"] == 0:
        emoji_index = max(0, emoji_index - 1)  # someone who never uses emoji gets fewer
    elif pattern["emojis"] / sentence_count > 0.2 and base["emoji"] != "none":
        emoji_index = min(2, emoji_index + 1)
    hashtags = base["hashtags"]
    if hashtags and pattern["hashtags"]:
        hashtags = min(5, max(hashtags, round(pattern["hashtags"] / max(1, pattern.get("samples", 1)))))
    formality_label = FORMALITY_LABELS[level + 1]
    return {
        "target_length_words": base["words"],
        "hashtags": hashtags,
        "formality": formality_label,
        "emoji_use": EMOJI_LEVELS[emoji_index],
        "notes": _adaptation_note(platform, formality_label, hashtags),
    }


def _adaptation_note(platform: str, formality: str, hashtags: int) -> str:
    label = Platform(platform).label
    tags = f"end with {hashtags} relevant hashtag{'s' if hashtags != 1 else ''}" if hashtags else "no hashtags"
    return f"{label}: keep a {formality} register, {tags}."


def analyse_writing(samples: str, *, platforms: list[str], website_text: str = "") -> StyleAnalysis:
    """Measure and describe the style of the writer's samples (the website text only adds
    vocabulary context: it is often navigation and boilerplate, not the writer's prose)."""
    sentences = split_sentences(samples)
    words = words_of(samples)
    if not sentences or len(words) < 5:
        raise AnalysisError("There is not enough text to analyse.")
    pattern = patterns(samples, sentences)
    pattern["samples"] = len([s for s in SAMPLE_SEPARATOR_RE.split(samples) if s.strip()])
    formality = formality_score(samples, words)
    vocab = vocabulary(samples + "\n" + website_text if website_text else samples, words)
    grade = flesch_kincaid_grade(words, len(sentences))
    return StyleAnalysis(
        tone=tone_label(samples, words, pattern, len(sentences), formality),
        voice=narrative_voice(words),
        complexity=complexity_label(grade),
        readability_grade=grade,
        engagement_level=engagement_label(samples, pattern, len(sentences), words),
        sentence_structure=sentence_structure(sentences) | {"formality": FORMALITY_LABELS[formality + 1]},
        vocabulary=vocab,
        patterns=pattern,
        adaptations={
            p: platform_adaptation(p, formality=formality, pattern=pattern, sentence_count=len(sentences))
            for p in platforms
            if p in PLATFORM_BASELINES
        },
    )


# --- Optional enrichment by a language model -----------------------------------------------------

LLM_PROMPT = (
    "You describe a writer's style for a writing assistant. Reply with one JSON object and nothing else, "
    'with the keys "tone" (2-4 words), "voice" (2-6 words, e.g. "First person, candid"), '
    '"engagement_level" ("Low", "Medium" or "High") and "favourite_phrases" (up to 5 short phrases '
    "the writer actually uses)."
)
LLM_TIMEOUT = (5.0, 30.0)
LLM_SAMPLE_CHARS = 6000


def llm_configured() -> bool:
    return bool(settings.LLM_BASE_URL and settings.LLM_MODEL)


def enrich_with_llm(analysis: StyleAnalysis, samples: str) -> StyleAnalysis:
    """Ask the configured model to refine the labels. Any failure keeps the local result: the
    enrichment is optional, so it is tried once and never retried or surfaced as an error."""
    if not llm_configured():
        return analysis
    try:
        labels = _ask_llm(samples[:LLM_SAMPLE_CHARS])
    except (requests.RequestException, ValueError, KeyError, IndexError, TypeError) as exc:
        log.warning("writing analysis enrichment failed, keeping the local analysis: %s", exc)
        return analysis
    return _merge_labels(analysis, labels)


def _ask_llm(text: str) -> dict:
    headers = {"Content-Type": "application/json"}
    if settings.LLM_API_KEY:
        headers["Authorization"] = f"Bearer {settings.LLM_API_KEY}"
    response = requests.post(
        settings.LLM_BASE_URL.rstrip("/") + "/chat/completions",
        json={
            "model": settings.LLM_MODEL,
            "temperature": 0,
            "messages": [{"role": "system", "content": LLM_PROMPT}, {"role": "user", "content": text}],
        },
        headers=headers,
        timeout=LLM_TIMEOUT,
    )
    response.raise_for_status()
    content = response.json()["choices"][0]["message"]["content"]
    # Some models wrap JSON in a Markdown fence despite being asked not to.
    content = re.sub(r"^```(?:json)?\s*|\s*```$", "", content.strip())
    labels = json.loads(content)
    if not isinstance(labels, dict):
        raise ValueError("the model did not reply with a JSON object")
    return labels


def _short_label(value, limit: int = 60) -> str:
    return value.strip()[:limit] if isinstance(value, str) and value.strip() else ""


def _merge_labels(analysis: StyleAnalysis, labels: dict) -> StyleAnalysis:
    tone = _short_label(labels.get("tone"))
    voice = _short_label(labels.get("voice"))
    engagement = _short_label(labels.get("engagement_level")).capitalize()
    phrases = [p.strip()[:80] for p in labels.get("favourite_phrases") or [] if isinstance(p, str) and p.strip()]
    changed = False
    if tone:
        analysis.tone, changed = tone, True
    if voice:
        analysis.voice, changed = voice, True
    if engagement in {"Low", "Medium", "High"}:
        analysis.engagement_level, changed = engagement, True
    if phrases:
        analysis.vocabulary["favourite_phrases"], changed = phrases[:5], True
    if changed:
        analysis.source = "local+llm"
    return analysis


# --- Saving ----------------------------------------------------------------------------------------


def save_analysis(persona: WritingPersona, analysis: StyleAnalysis) -> None:
    """Write the analysis to the persona and keep one adaptation row per chosen platform."""
    with transaction.atomic():
        persona.tone = analysis.tone
        persona.voice = analysis.voice
        persona.complexity = analysis.complexity
        persona.readability_grade = analysis.readability_grade
        persona.engagement_level = analysis.engagement_level
        persona.sentence_structure = analysis.sentence_structure
        persona.vocabulary = analysis.vocabulary
        persona.patterns = analysis.patterns
        persona.analysis_source = analysis.source
        persona.analysed_at = timezone.now()
        persona.save()
        persona.adaptations.exclude(platform__in=list(analysis.adaptations)).delete()
        for platform, values in analysis.adaptations.items():
            PlatformAdaptation.objects.update_or_create(
                persona=persona, platform=platform, defaults={"tone": analysis.tone, **values}
            )


def analyse_and_save(persona: WritingPersona, *, samples: str, platforms: list[str], website_text: str = "") -> None:
    analysis = analyse_writing(samples, platforms=platforms, website_text=website_text)
    save_analysis(persona, enrich_with_llm(analysis, samples))
