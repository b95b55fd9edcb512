from django.contrib import admin
from django.urls import include, path

from personas import views as persona_views

urlpatterns = [
    path("", persona_views.home, name="home"),
    path("accounts/signup/", persona_views.signup, name="signup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("persona/", include("personas.urls")),
    path("onboarding/", include("onboarding.urls")),
    path("media/", include("media_pipeline.urls")),
    path("privacy/", include("personas.privacy_urls")),
    path("admin/", admin.site.urls),
]
