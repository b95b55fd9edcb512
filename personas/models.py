from django.conf import settings
from django.db import models
from django.db.models.signals import post_save
from django.dispatch import receiver


class Tier(models.TextChoices):
    FREE = "free", "Free"
    BASIC = "basic", "Basic"
    PRO = "pro", "Pro"
    ENTERPRISE = "enterprise", "Enterprise"


class Subscription(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="subscription")
    tier = models.CharField(max_length=20, choices=Tier.choices, default=Tier.FREE)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.user} ({self.get_tier_display()})"

    @property
    def features(self) -> dict:
        return settings.TIERS[self.tier]


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def create_subscription(sender, instance, created, **kwargs):
    if created:
        Subscription.objects.get_or_create(user=instance)


class TrainingStatus(models.TextChoices):
    NOT_TRAINED = "not_trained", "Not trained"
    TRAINING = "training", "Training"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Emotion(models.TextChoices):
    # MiniMax's emotion values; "auto" means the field is omitted and the model chooses.
    AUTO = "auto", "Automatic"
    HAPPY = "happy", "Happy"
    SAD = "sad", "Sad"
    ANGRY = "angry", "Angry"
    FEARFUL = "fearful", "Fearful"
    DISGUSTED = "disgusted", "Disgusted"
    SURPRISED = "surprised", "Surprised"
    CALM = "calm", "Calm"
    FLUENT = "fluent", "Fluent"
    WHISPER = "whisper", "Whisper"


class AspectRatio(models.TextChoices):
    LANDSCAPE = "16:9", "16:9 landscape"
    SQUARE = "1:1", "1:1 square"
    PORTRAIT_45 = "4:5", "4:5 portrait"
    VERTICAL = "9:16", "9:16 vertical"


class AvatarStyle(models.TextChoices):
    NATURAL = "natural", "Natural"
    PROFESSIONAL = "professional", "Professional"
    VIVID = "vivid", "Vivid"


class AvatarFraming(models.TextChoices):
    HEAD = "head", "Head and shoulders"
    CLOSE = "close", "Close-up"
    WIDE = "wide", "Wide"


class ContentPreference(models.TextChoices):
    AUDIO = "audio", "Audio"
    VIDEO = "video", "Video"
    BOTH = "both", "Audio and video"


class WritingPersona(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="personas")
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Writing style (filled by the analyser).
    tone = models.CharField(max_length=100, blank=True)
    voice = models.CharField(
        max_length=100, blank=True, help_text="Narrative voice, e.g. first person, conversational."
    )
    complexity = models.CharField(max_length=100, blank=True)
    readability_grade = models.FloatField(null=True, blank=True)
    engagement_level = models.CharField(max_length=100, blank=True)
    sentence_structure = models.JSONField(default=dict, blank=True)
    vocabulary = models.JSONField(default=dict, blank=True)
    patterns = models.JSONField(default=dict, blank=True)
    analysis_source = models.CharField(max_length=50, blank=True)
    analysed_at = models.DateTimeField(null=True, blank=True)

    # Voice (the seed's fields plus settings). voice_id is the voice content uses now; a
    # retrain's candidate lives on its job until approved.
    voice_id = models.CharField(max_length=255, blank=True)
    voice_provider = models.CharField(max_length=50, blank=True)
    voice_training_status = models.CharField(
        max_length=20, choices=TrainingStatus.choices, default=TrainingStatus.NOT_TRAINED
    )
    voice_training_audio = models.FileField(upload_to="private/voice_samples/", blank=True, max_length=300)
    voice_preview = models.FileField(upload_to="private/voice_previews/", blank=True, max_length=300)
    voice_trained_at = models.DateTimeField(null=True, blank=True)
    voice_approved_at = models.DateTimeField(null=True, blank=True)
    voice_activated_at = models.DateTimeField(null=True, blank=True)
    voice_skipped_at = models.DateTimeField(null=True, blank=True)
    voice_profile = models.JSONField(default=dict, blank=True, help_text="Measured F0 and speaking rate.")
    voice_emotion = models.CharField(max_length=20, choices=Emotion.choices, default=Emotion.AUTO)
    voice_speed = models.FloatField(default=1.0)
    voice_pitch = models.IntegerField(default=0)
    voice_volume = models.FloatField(default=1.0)

    # Avatar (the seed's fields plus settings).
    avatar_id = models.CharField(max_length=255, blank=True)
    avatar_provider = models.CharField(max_length=50, blank=True)
    avatar_training_status = models.CharField(
        max_length=20, choices=TrainingStatus.choices, default=TrainingStatus.NOT_TRAINED
    )
    avatar_image = models.FileField(upload_to="private/avatar_photos/", blank=True, max_length=300)
    avatar_portrait = models.FileField(
        upload_to="private/avatar_photos/", blank=True, max_length=300, help_text="Normalised crop sent to providers."
    )
    avatar_preview = models.FileField(upload_to="private/avatar_previews/", blank=True, max_length=300)
    avatar_created_at = models.DateTimeField(null=True, blank=True)
    avatar_approved_at = models.DateTimeField(null=True, blank=True)
    avatar_skipped_at = models.DateTimeField(null=True, blank=True)
    avatar_background = models.CharField(max_length=20, default="#1f2937", help_text="Hex colour.")
    avatar_background_image = models.FileField(upload_to="private/avatar_backgrounds/", blank=True, max_length=300)
    avatar_style = models.CharField(max_length=20, choices=AvatarStyle.choices, default=AvatarStyle.NATURAL)
    avatar_framing = models.CharField(max_length=20, choices=AvatarFraming.choices, default=AvatarFraming.HEAD)
    avatar_aspect_ratio = models.CharField(max_length=5, choices=AspectRatio.choices, default=AspectRatio.SQUARE)
    captions_enabled = models.BooleanField(default=True)
    content_preference = models.CharField(
        max_length=10, choices=ContentPreference.choices, default=ContentPreference.BOTH
    )

    # Opt-outs and approvals.
    voice_opted_out = models.BooleanField(default=False)
    avatar_opted_out = models.BooleanField(default=False)
    approved_at = models.DateTimeField(null=True, blank=True, help_text="Whole persona approved (step 7).")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(voice_speed__gte=0.5, voice_speed__lte=2.0), name="voice_speed_range"
            ),
            models.CheckConstraint(
                condition=models.Q(voice_pitch__gte=-12, voice_pitch__lte=12), name="voice_pitch_range"
            ),
            models.CheckConstraint(
                condition=models.Q(voice_volume__gt=0, voice_volume__lte=10), name="voice_volume_range"
            ),
            models.CheckConstraint(
                condition=~models.Q(voice_training_status="ready") | ~models.Q(voice_id=""),
                name="ready_voice_has_id",
            ),
            models.CheckConstraint(
                condition=~models.Q(avatar_training_status="ready") | ~models.Q(avatar_id=""),
                name="ready_avatar_has_id",
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def speaking_voice_provider(self) -> str:
        """The provider that speaks in this persona's voice: the one it was trained with, or for a
        voice not trained yet the one that would train it."""
        return self.voice_provider or settings.VOICE_PROVIDER

    @property
    def voice_ready(self) -> bool:
        return self.voice_training_status == TrainingStatus.READY and bool(self.voice_id) and not self.voice_opted_out

    @property
    def avatar_ready(self) -> bool:
        return (
            self.avatar_training_status == TrainingStatus.READY and bool(self.avatar_id) and not self.avatar_opted_out
        )


class Platform(models.TextChoices):
    LINKEDIN = "linkedin", "LinkedIn"
    FACEBOOK = "facebook", "Facebook"
    BLOG = "blog", "Blog"
    EMAIL = "email", "Email"
    STORY = "story", "Story"


class PlatformAdaptation(models.Model):
    persona = models.ForeignKey(WritingPersona, on_delete=models.CASCADE, related_name="adaptations")
    platform = models.CharField(max_length=20, choices=Platform.choices)
    tone = models.CharField(max_length=100, blank=True)
    target_length_words = models.PositiveIntegerField(default=150)
    hashtags = models.PositiveSmallIntegerField(default=0, help_text="Hashtags per post.")
    formality = models.CharField(max_length=20, default="neutral")
    emoji_use = models.CharField(max_length=20, default="none")
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["platform"]
        constraints = [models.UniqueConstraint(fields=["persona", "platform"], name="one_adaptation_per_platform")]

    def __str__(self):
        return f"{self.persona} / {self.get_platform_display()}"


class Capability(models.TextChoices):
    VOICE = "voice", "Voice"
    AVATAR = "avatar", "Avatar"


class ConsentRecord(models.Model):
    """Explicit opt-in for biometric processing, kept as evidence (GDPR art. 9, BIPA)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="consents")
    persona = models.ForeignKey(WritingPersona, on_delete=models.CASCADE, related_name="consents")
    capability = models.CharField(max_length=10, choices=Capability.choices)
    text = models.TextField()
    text_version = models.CharField(max_length=20)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    granted_at = models.DateTimeField(auto_now_add=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-granted_at"]

    def __str__(self):
        return f"{self.user} {self.capability} consent v{self.text_version}"
