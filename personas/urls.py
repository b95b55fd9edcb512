from django.urls import path

from personas import views

app_name = "personas"


def capability_paths():
    """voice/delete/, avatar/opt-out/, ...: one confirm-then-act view for each pair."""
    return [
        path(
            f"{capability}/{action}/",
            views.capability_action,
            {"capability": capability, "action": action},
            name=f"{capability}_{action.replace('-', '_')}",
        )
        for capability in ("voice", "avatar")
        for action in views.CAPABILITY_ACTIONS
    ]


urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("settings/", views.settings_page, name="settings"),
    path("settings/voice/", views.save_voice_settings, name="settings_voice"),
    path("settings/voice/sample/", views.hear_voice_sample, name="settings_voice_sample"),
    path("settings/avatar/", views.save_avatar_settings, name="settings_avatar"),
    path("settings/platforms/", views.save_platform_settings, name="settings_platforms"),
    path("settings/content/", views.save_content_preference, name="settings_content"),
    *capability_paths(),
    path("studio/", views.studio_index, name="studio"),
    path("studio/story/", views.studio_page, {"content_type": "story"}, name="studio_story"),
    path("studio/linkedin/", views.studio_page, {"content_type": "linkedin"}, name="studio_linkedin"),
    path("studio/blog/", views.studio_page, {"content_type": "blog"}, name="studio_blog"),
    path("studio/email/", views.studio_page, {"content_type": "email"}, name="studio_email"),
    path("jobs/<int:job_id>/", views.job_detail, name="job"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="job_cancel"),
    path("library/", views.library, name="library"),
    path("library/<int:asset_id>/delete/", views.delete_asset, name="asset_delete"),
]
