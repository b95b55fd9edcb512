import json

import pytest
import requests
import responses

from personas import analysis
from personas.models import PlatformAdaptation, WritingPersona

CASUAL = """I've been writing about content strategy for ten years. What changed? Almost everything!
Here's what I learned about content strategy, and why you'll love it.

- Start with the reader.
- Cut the jargon: nobody wants synergy or a scalable paradigm.
- Measure your ROI 🚀

Do you agree? Let me know in the comments. #ContentMarketing #Writing
---
We help small teams publish better content. Our content strategy workshops are short and practical.
You'll leave with a plan you can use on Monday. Isn't that great? Share it with your team!"""

FORMAL = (
    "The committee has examined the proposal in considerable detail. Furthermore, the financial "
    "projections were evaluated against independent benchmarks. Consequently, the recommendations "
    "presented herein reflect a comprehensive assessment of organisational requirements. "
    "Implementation will therefore proceed incrementally, subject to quarterly evaluation."
)

LLM_URL = "https://llm.example.com/v1/chat/completions"


def test_sentence_structure_is_measured():
    result = analysis.analyse_writing("One two three. One two three four five. Go!", platforms=[])
    structure = result.sentence_structure
    assert structure["sentences"] == 3
    assert structure["mean_length"] == 3.0  # (3 + 5 + 1) / 3
    assert structure["variance"] == pytest.approx(2.7, abs=0.05)  # population variance of 3, 5, 1
    assert (structure["shortest"], structure["longest"]) == (1, 5)


def test_casual_writing_is_described_as_such():
    result = analysis.analyse_writing(CASUAL, platforms=["linkedin", "blog"])
    assert result.tone == "Enthusiastic"
    assert result.engagement_level == "High"
    assert result.sentence_structure["formality"] == "casual"
    assert result.patterns["questions"] == 3
    assert result.patterns["list_items"] == 3
    assert result.patterns["emojis"] == 1
    assert result.patterns["hashtags"] == 2
    assert result.patterns["samples"] == 2
    assert {"synergy", "scalable", "paradigm", "roi"} <= set(result.vocabulary["jargon"])
    assert result.vocabulary["favourite_phrases"][0] == "content strategy"
    assert set(result.adaptations) == {"linkedin", "blog"}
    assert result.adaptations["linkedin"]["hashtags"] >= 1
    assert result.adaptations["blog"]["hashtags"] == 0
    assert result.source == "local"


def test_formal_writing_is_harder_and_formal():
    formal = analysis.analyse_writing(FORMAL, platforms=["email", "facebook"])
    casual = analysis.analyse_writing(CASUAL, platforms=[])
    assert formal.readability_grade > casual.readability_grade
    assert formal.complexity in {"Advanced", "Academic"}
    assert formal.tone == "Formal and authoritative"
    assert formal.voice == "Third person, impersonal"
    assert formal.adaptations["email"]["formality"] == "formal"
    assert formal.adaptations["email"]["emoji_use"] == "none"
    # Facebook is less formal than email for the same writer.
    assert formal.adaptations["facebook"]["formality"] == "neutral"


def test_the_analysis_is_deterministic():
    assert analysis.analyse_writing(CASUAL, platforms=["story"]) == analysis.analyse_writing(
        CASUAL, platforms=["story"]
    )


def test_text_without_sentences_is_refused():
    with pytest.raises(analysis.AnalysisError):
        analysis.analyse_writing("🙂 🙂", platforms=[])


def test_syllables_and_grade():
    assert analysis.count_syllables("cat") == 1
    assert analysis.count_syllables("make") == 1
    assert analysis.count_syllables("table") == 2
    assert analysis.count_syllables("organisation") == 5


@pytest.mark.django_db
def test_saving_writes_the_persona_and_one_row_per_platform(owner):
    persona = WritingPersona.objects.create(user=owner, name="Owner")
    PlatformAdaptation.objects.create(persona=persona, platform="story")
    analysis.analyse_and_save(persona, samples=CASUAL, platforms=["linkedin", "email"])
    persona.refresh_from_db()
    assert persona.tone == "Enthusiastic"
    assert persona.readability_grade is not None and persona.analysed_at is not None
    assert persona.analysis_source == "local"
    rows = {a.platform: a for a in persona.adaptations.all()}
    assert set(rows) == {"linkedin", "email"}  # the platform no longer chosen is gone
    assert rows["linkedin"].tone == "Enthusiastic"
    assert "LinkedIn" in rows["linkedin"].notes


# --- The optional language-model enrichment -------------------------------------------------------


@pytest.fixture
def llm(settings):
    settings.LLM_BASE_URL = "https://llm.example.com/v1/"
    settings.LLM_API_KEY = "test-key"
    settings.LLM_MODEL = "test-model"


def _chat_reply(content: str) -> dict:
    return {"choices": [{"message": {"role": "assistant", "content": content}}]}


@responses.activate
def test_the_model_refines_labels_but_not_measurements(llm):
    labels = {
        "tone": "Warm and upbeat",
        "voice": "First person, candid",
        "engagement_level": "high",
        "favourite_phrases": ["content strategy", "let me know"],
    }
    call = responses.post(LLM_URL, json=_chat_reply("```json\n" + json.dumps(labels) + "\n```"))
    local = analysis.analyse_writing(CASUAL, platforms=["linkedin"])
    grade = local.readability_grade
    result = analysis.enrich_with_llm(local, CASUAL)
    assert (result.tone, result.voice, result.engagement_level) == (
        "Warm and upbeat",
        "First person, candid",
        "High",
    )
    assert result.vocabulary["favourite_phrases"] == ["content strategy", "let me know"]
    assert result.readability_grade == grade
    assert result.source == "local+llm"
    request = call.calls[0].request
    assert request.headers["Authorization"] == "Bearer test-key"
    body = json.loads(request.body)
    assert body["model"] == "test-model" and body["messages"][1]["content"].startswith("I've been")


@pytest.mark.parametrize(
    "reply",
    [
        {"status": 500, "json": {"error": "overloaded"}},
        {"status": 200, "json": _chat_reply("I think the tone is friendly.")},
        {"status": 200, "json": {"unexpected": True}},
        {"status": 200, "json": _chat_reply('["not", "an", "object"]')},
        {"body": requests.ConnectionError("refused")},
        {"body": requests.Timeout("slow")},
    ],
)
@responses.activate
def test_any_model_failure_keeps_the_local_analysis(llm, reply):
    responses.post(LLM_URL, **reply)
    local = analysis.analyse_writing(CASUAL, platforms=[])
    before = (local.tone, local.voice, local.engagement_level)
    result = analysis.enrich_with_llm(local, CASUAL)
    assert (result.tone, result.voice, result.engagement_level) == before
    assert result.source == "local"


@responses.activate
def test_invalid_labels_are_ignored(llm):
    responses.post(LLM_URL, json=_chat_reply(json.dumps({"tone": 42, "engagement_level": "Extreme"})))
    local = analysis.analyse_writing(CASUAL, platforms=[])
    result = analysis.enrich_with_llm(local, CASUAL)
    assert result.tone == "Enthusiastic" and result.engagement_level == "High"
    assert result.source == "local"


@responses.activate
def test_no_request_is_made_when_no_model_is_configured(settings):
    settings.LLM_BASE_URL = ""
    local = analysis.analyse_writing(CASUAL, platforms=[])
    assert analysis.enrich_with_llm(local, CASUAL).source == "local"
    assert len(responses.calls) == 0
