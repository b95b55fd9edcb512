from django.urls import path

from onboarding import views

app_name = "onboarding"
persona = "persona/<int:persona_id>/"
urlpatterns = [
    path("", views.start, name="start"),
    path("content/", views.content, name="content"),
    # Stable addresses for links from elsewhere (e.g. the dashboard's /onboarding/persona/#voice).
    path("persona/", views.current_persona_page, name="current_persona"),
    path("preview/", views.current_preview, name="current_preview"),
    # Step 6: one page, three sections; each section also answers on its own for htmx polling.
    path(persona, views.persona_page, name="persona"),
    path(persona + "style/", views.section, {"section": "style"}, name="style"),
    path(persona + "style/analyse/", views.analyse_style, name="analyse_style"),
    path(persona + "voice/", views.section, {"section": "voice"}, name="voice"),
    path(persona + "voice/sample/", views.upload_voice_sample, name="voice_sample"),
    path(persona + "voice/train/<int:job_id>/", views.train_voice, name="voice_train"),
    path(persona + "voice/retry/", views.retry_voice, name="voice_retry"),
    path(persona + "voice/approve/", views.approve_voice, name="voice_approve"),
    path(persona + "voice/keep-current/", views.discard_voice_candidate, name="voice_discard"),
    path(persona + "voice/cancel/", views.cancel_voice, name="voice_cancel"),
    path(persona + "voice/skip/", views.skip_voice, name="voice_skip"),
    path(persona + "voice/sentence/", views.hear_sentence, name="voice_sentence"),
    path(persona + "avatar/", views.section, {"section": "avatar"}, name="avatar"),
    path(persona + "avatar/photo/", views.upload_photo, name="avatar_photo"),
    path(persona + "avatar/create/<int:job_id>/", views.create_avatar, name="avatar_create"),
    path(persona + "avatar/recreate/", views.recreate_avatar, name="avatar_recreate"),
    path(persona + "avatar/approve/", views.approve_avatar, name="avatar_approve"),
    path(persona + "avatar/keep-current/", views.discard_avatar_candidate, name="avatar_discard"),
    path(persona + "avatar/cancel/", views.cancel_avatar, name="avatar_cancel"),
    path(persona + "avatar/skip/", views.skip_avatar, name="avatar_skip"),
    # Step 7.
    path(persona + "preview/", views.preview, name="preview"),
    path(persona + "approve/", views.approve_persona, name="approve"),
]
