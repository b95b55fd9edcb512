from django.conf import settings
from django.db import models


class OnboardingData(models.Model):
    """What steps 1-5 collect in the full platform: the input of the writing-style analysis."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="onboarding")
    brand_name = models.CharField(max_length=200)
    website_url = models.URLField(blank=True)
    website_text = models.TextField(blank=True)
    writing_samples = models.TextField()
    platforms = models.JSONField(default=list)
    # The style analysis runs in the worker; these say whether one is pending and how the last ended.
    analysis_requested_at = models.DateTimeField(null=True, blank=True)
    analysis_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"Onboarding of {self.user}"
