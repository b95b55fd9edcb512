from django.urls import path

from media_pipeline import views

app_name = "media"
urlpatterns = [
    path("persona/<int:persona_id>/<slug:kind>/", views.persona_media, name="persona"),
    path("job/<int:job_id>/preview/", views.job_preview, name="job_preview"),
    path("asset/<int:asset_id>/", views.asset_file, name="asset"),
]
