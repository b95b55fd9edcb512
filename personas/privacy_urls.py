from django.urls import path

from personas import privacy_views

app_name = "privacy"
urlpatterns = [
    path("", privacy_views.overview, name="overview"),
    path("export/", privacy_views.export, name="export"),
    path("withdraw/<slug:capability>/", privacy_views.withdraw, name="withdraw"),
    path("delete-everything/", privacy_views.delete_everything, name="delete_everything"),
]
