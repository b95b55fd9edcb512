import io
import tempfile

from django import forms
from django.conf import settings
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from django.core.validators import RegexValidator

from media_pipeline import photo
from media_pipeline.models import AssetKind
from personas.models import AspectRatio, Platform, PlatformAdaptation, WritingPersona


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=True)

    class Meta:
        model = User
        fields = ("username", "email")

    def clean_email(self):
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email already exists.")
        return email


# --- Persona settings ------------------------------------------------------------------------

HEX_COLOUR = RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use a colour like #1f2937.")
BACKGROUND_MAX_SIDE = 1920  # larger than any render frame; bigger uploads are scaled down
EMOJI_CHOICES = [("none", "None"), ("light", "A little"), ("frequent", "Frequent")]


class VoiceSettingsForm(forms.ModelForm):
    voice_speed = forms.FloatField(min_value=0.5, max_value=2.0, widget=forms.NumberInput(attrs={"step": "0.05"}))
    voice_pitch = forms.IntegerField(min_value=-12, max_value=12, help_text="Semitones.")
    voice_volume = forms.FloatField(min_value=0.1, max_value=10, widget=forms.NumberInput(attrs={"step": "0.1"}))

    class Meta:
        model = WritingPersona
        fields = ["voice_emotion", "voice_speed", "voice_pitch", "voice_volume"]
        labels = {"voice_emotion": "Emotion", "voice_speed": "Speed", "voice_pitch": "Pitch", "voice_volume": "Volume"}


class AvatarSettingsForm(forms.ModelForm):
    avatar_background = forms.CharField(
        label="Background colour", validators=[HEX_COLOUR], widget=forms.TextInput(attrs={"type": "color"})
    )
    background_image = forms.FileField(
        required=False, help_text="Optional JPEG, PNG or WebP; it replaces the colour.", label="Background image"
    )
    remove_background_image = forms.BooleanField(required=False, label="Remove the background image")

    class Meta:
        model = WritingPersona
        fields = ["avatar_background", "avatar_style", "avatar_framing", "avatar_aspect_ratio", "captions_enabled"]
        labels = {
            "avatar_style": "Style",
            "avatar_framing": "Framing",
            "avatar_aspect_ratio": "Default aspect ratio",
            "captions_enabled": "Burn captions into videos",
        }

    def clean_background_image(self) -> bytes | None:
        """Checked by content (Pillow decodes it), upright, without metadata, re-encoded as PNG."""
        upload = self.cleaned_data.get("background_image")
        if not upload:
            return None
        if upload.size > settings.MAX_PHOTO_UPLOAD_BYTES:
            limit_mb = settings.MAX_PHOTO_UPLOAD_BYTES // (1024 * 1024)
            raise forms.ValidationError(f"The image is too large; use one under {limit_mb} MB.")
        with tempfile.NamedTemporaryFile(suffix=".upload") as temp:
            for chunk in upload.chunks():
                temp.write(chunk)
            temp.flush()
            try:
                image, _ = photo.load_photo(temp.name)
            except photo.PhotoRejected as exc:
                raise forms.ValidationError(str(exc)) from None
        image.thumbnail((BACKGROUND_MAX_SIDE, BACKGROUND_MAX_SIDE))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        return buffer.getvalue()


class ContentPreferenceForm(forms.ModelForm):
    class Meta:
        model = WritingPersona
        fields = ["content_preference"]
        labels = {"content_preference": "Make by default"}
        widgets = {"content_preference": forms.RadioSelect}


class PlatformAdaptationForm(forms.Form):
    platform = forms.ChoiceField(choices=Platform.choices, widget=forms.HiddenInput)
    tone = forms.CharField(max_length=100, required=False)
    target_length_words = forms.IntegerField(min_value=20, max_value=5000, label="Length (words)")
    hashtags = forms.IntegerField(min_value=0, max_value=30)
    emoji_use = forms.ChoiceField(choices=EMOJI_CHOICES, label="Emoji")

    @property
    def platform_label(self) -> str:
        return Platform(self["platform"].value()).label if self["platform"].value() in Platform.values else ""


class BasePlatformAdaptationFormSet(forms.BaseFormSet):
    def clean(self):
        if any(self.errors):
            return
        platforms = [form.cleaned_data["platform"] for form in self.forms]
        if len(platforms) != len(set(platforms)):
            raise forms.ValidationError("Each platform can appear only once.")


PlatformAdaptationFormSet = forms.formset_factory(
    PlatformAdaptationForm, formset=BasePlatformAdaptationFormSet, extra=0, max_num=len(Platform.choices)
)


def platform_adaptation_initial(persona: WritingPersona) -> list[dict]:
    """One row per platform: the analysis's values where it made them, else neutral defaults."""
    saved = {a.platform: a for a in persona.adaptations.all()}
    rows = []
    for platform in Platform.values:
        adaptation = saved.get(platform) or PlatformAdaptation(platform=platform)
        rows.append(
            {
                "platform": platform,
                "tone": adaptation.tone,
                "target_length_words": adaptation.target_length_words,
                "hashtags": adaptation.hashtags,
                "emoji_use": adaptation.emoji_use if adaptation.emoji_use in dict(EMOJI_CHOICES) else "none",
            }
        )
    return rows


# --- Content studio --------------------------------------------------------------------------


class StudioForm(forms.Form):
    """Fields every generation has; `request_options` turns the form into studio options."""

    field_order = [
        "recipient_name",
        "title",
        "text",
        "aspect_ratio",
        "burn_captions",
        "use_persona_voice",
        "make_video",
    ]
    use_persona_voice = forms.BooleanField(required=False, initial=True, label="Narrate in my voice")
    make_video = forms.BooleanField(required=False, label="Also make an avatar video")

    def __init__(self, *args, persona: WritingPersona, **kwargs):
        super().__init__(*args, **kwargs)
        self.persona = persona
        features = persona.user.subscription.features
        if not self.is_bound:
            self.initial.setdefault("make_video", persona.content_preference in ("video", "both"))
        if not (features["avatar"] and persona.avatar_ready):
            self.fields["make_video"].disabled = True
            self.fields["make_video"].initial = False
            self.fields["make_video"].help_text = (
                "Avatar video needs the Pro or Enterprise plan and a finished avatar."
                if not features["avatar"]
                else "Create your avatar first to make videos."
            )
        if not (features["voice"] and persona.voice_ready):
            self.fields[
                "use_persona_voice"
            ].help_text = "Your own voice is not available, so the standard voice narrates."

    def request_options(self) -> dict:
        data = self.cleaned_data
        return {"use_persona_voice": data["use_persona_voice"], "make_video": data["make_video"]}


class StoryForm(StudioForm):
    title = forms.CharField(max_length=150)

    def request_options(self) -> dict:
        return {**super().request_options(), "title": self.cleaned_data["title"]}


class SceneForm(forms.Form):
    text = forms.CharField(label="Scene", max_length=3000, widget=forms.Textarea(attrs={"rows": 4}), strip=True)


class BaseSceneFormSet(forms.BaseFormSet):
    def scenes(self) -> tuple[str, ...]:
        """Scene texts in the order the writer chose (deleted scenes left out)."""
        return tuple(form.cleaned_data["text"] for form in self.ordered_forms if form.cleaned_data.get("text"))


SceneFormSet = forms.formset_factory(
    SceneForm,
    formset=BaseSceneFormSet,
    extra=0,
    min_num=1,
    validate_min=True,
    max_num=30,
    validate_max=True,
    can_order=True,
    can_delete=True,
)


class LinkedInVideoForm(StudioForm):
    text = forms.CharField(label="Post", max_length=3000, widget=forms.Textarea(attrs={"rows": 8}))
    aspect_ratio = forms.ChoiceField(choices=AspectRatio.choices, label="Aspect ratio")
    burn_captions = forms.BooleanField(required=False, label="Burn captions into the video")

    def __init__(self, *args, persona: WritingPersona, **kwargs):
        super().__init__(*args, persona=persona, **kwargs)
        self.fields["aspect_ratio"].initial = persona.avatar_aspect_ratio
        self.fields["burn_captions"].initial = persona.captions_enabled
        if not self.is_bound and not self.fields["make_video"].disabled:
            self.initial["make_video"] = True  # it is a video post

    def request_options(self) -> dict:
        data = self.cleaned_data
        return {
            **super().request_options(),
            "aspect_ratio": data["aspect_ratio"],
            "burn_captions": data["burn_captions"],
        }


class BlogNarrationForm(StudioForm):
    title = forms.CharField(max_length=150)
    text = forms.CharField(label="Blog post", max_length=50_000, widget=forms.Textarea(attrs={"rows": 14}))

    def __init__(self, *args, persona: WritingPersona, **kwargs):
        super().__init__(*args, persona=persona, **kwargs)
        self.fields["make_video"].label = "Also make a short explainer video of the opening"

    def request_options(self) -> dict:
        return {**super().request_options(), "title": self.cleaned_data["title"]}


class EmailVideoForm(StudioForm):
    recipient_name = forms.CharField(max_length=80, label="Recipient's name")
    text = forms.CharField(
        label="Message", max_length=1200, widget=forms.Textarea(attrs={"rows": 6}), help_text="A short personal note."
    )

    def __init__(self, *args, persona: WritingPersona, **kwargs):
        super().__init__(*args, persona=persona, **kwargs)
        if not self.is_bound and not self.fields["make_video"].disabled:
            self.initial["make_video"] = True

    def request_options(self) -> dict:
        return {**super().request_options(), "recipient_name": self.cleaned_data["recipient_name"]}


class LibraryFilterForm(forms.Form):
    kind = forms.ChoiceField(choices=[("", "Everything"), *AssetKind.choices], required=False, label="Type")
    content_type = forms.ChoiceField(required=False, label="Made for")

    def __init__(self, *args, content_types, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["content_type"].choices = [("", "Anything"), *content_types]
