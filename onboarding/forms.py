from pathlib import Path

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from media_pipeline.ratelimit import RateLimited, check_rate_limit
from onboarding.website import WebsiteError, fetch_website_text
from personas.analysis import words_of
from personas.models import Platform

MIN_SAMPLE_WORDS = 150
AUDIO_EXTENSIONS = (".mp3", ".m4a", ".wav", ".webm", ".ogg")
PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif")


class ContentForm(forms.Form):
    """The stand-in for onboarding steps 1-5: what the style analysis needs."""

    brand_name = forms.CharField(label="Your name or brand", max_length=200)
    website_url = forms.URLField(
        label="Website (optional)",
        required=False,
        assume_scheme="https",
        help_text="We read the visible text of this page as extra context.",
    )
    writing_samples = forms.CharField(
        label="Writing samples",
        widget=forms.Textarea(attrs={"rows": 12}),
        help_text=(
            f"Paste at least {MIN_SAMPLE_WORDS} words you wrote: posts, articles, emails. A few hundred words give "
            "a better analysis. Separate several samples with a line containing only ---."
        ),
    )
    platforms = forms.MultipleChoiceField(
        label="Where you publish",
        choices=Platform.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one platform."},
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user  # whose hourly website-fetch allowance a fetch counts against

    def clean_writing_samples(self):
        text = self.cleaned_data["writing_samples"].strip()
        count = len(words_of(text))
        if count < MIN_SAMPLE_WORDS:
            raise forms.ValidationError(
                f"Your samples have {count} words; paste at least {MIN_SAMPLE_WORDS} so the analysis is meaningful."
            )
        return text

    def clean(self):
        cleaned = super().clean()
        cleaned["website_text"] = ""
        url = cleaned.get("website_url")
        if url and not self.errors:
            # Fetched only once everything else is valid, so a typo elsewhere costs no request.
            try:
                if self.user is not None:
                    check_rate_limit(self.user, "website_fetch")
                cleaned["website_text"] = fetch_website_text(url)
            except (WebsiteError, RateLimited) as exc:
                self.add_error("website_url", str(exc))
        return cleaned


def _check_upload(upload, *, extensions: tuple[str, ...], max_bytes: int, kind: str) -> None:
    if Path(upload.name).suffix.lower() not in extensions:
        allowed = ", ".join(e.lstrip(".").upper() for e in extensions)
        raise forms.ValidationError(f"That file is not {kind} we can use. Upload one of: {allowed}.")
    if upload.size > max_bytes:
        limit = filesizeformat(max_bytes)
        raise forms.ValidationError(f"That file is larger than {limit}. Please upload a smaller file.")
    if upload.size == 0:
        raise forms.ValidationError("That file is empty.")


class ConsentUploadForm(forms.Form):
    """An upload that needs the tier, the consent (unless already given) and, on plans that pay
    per use, a confirmed cost. The file's content is checked later, in the worker."""

    consent = forms.BooleanField(required=False)
    tier_error = ""
    consent_error = ""

    def __init__(self, *args, tier_allows: bool, needs_consent: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.tier_allows = tier_allows
        self.needs_consent = needs_consent

    def clean(self):
        cleaned = super().clean()
        if not self.tier_allows:
            raise forms.ValidationError(self.tier_error)
        if self.needs_consent and not cleaned.get("consent"):
            self.add_error("consent", self.consent_error)
        return cleaned


class VoiceSampleForm(ConsentUploadForm):
    sample = forms.FileField(
        label="Voice sample",
        error_messages={"required": "Choose an audio file or record your voice first."},
        widget=forms.ClearableFileInput(attrs={"accept": "audio/*,.mp3,.m4a,.wav,.webm,.ogg"}),
    )
    confirm_cost = forms.BooleanField(required=False)
    tier_error = "Voice cloning is not part of your plan. Upgrade to use your own voice."
    consent_error = "Please agree to the voice consent before uploading your voice."

    def __init__(self, *args, cost_to_confirm=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.cost_to_confirm = cost_to_confirm

    def clean_sample(self):
        sample = self.cleaned_data["sample"]
        _check_upload(sample, extensions=AUDIO_EXTENSIONS, max_bytes=settings.MAX_AUDIO_UPLOAD_BYTES, kind="audio")
        return sample

    def clean(self):
        cleaned = super().clean()
        if self.cost_to_confirm and not cleaned.get("confirm_cost"):
            self.add_error("confirm_cost", f"Please confirm the one-time charge of ${self.cost_to_confirm}.")
        return cleaned


class PhotoForm(ConsentUploadForm):
    photo = forms.FileField(
        label="Photo",
        error_messages={"required": "Choose a photo or take one with your camera first."},
        widget=forms.ClearableFileInput(
            attrs={"accept": "image/jpeg,image/png,image/webp,image/heic,image/heif,.heic,.heif"}
        ),
    )
    tier_error = "Avatars are part of the Pro and Enterprise plans. Upgrade to create your avatar."
    consent_error = "Please agree to the avatar consent before uploading your photo."

    def clean_photo(self):
        photo = self.cleaned_data["photo"]
        _check_upload(photo, extensions=PHOTO_EXTENSIONS, max_bytes=settings.MAX_PHOTO_UPLOAD_BYTES, kind="a photo")
        return photo


class TrainVoiceForm(forms.Form):
    accept_warnings = forms.BooleanField(required=False)


class SentenceForm(forms.Form):
    text = forms.CharField(
        label="A sentence to hear in your voice",
        max_length=200,
        error_messages={"required": "Type a sentence to hear.", "max_length": "Keep it to one short sentence."},
    )
