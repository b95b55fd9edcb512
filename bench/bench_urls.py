"""The app's URLs plus two baseline views served by the same server through the same middleware:
a bare Django view (no templates, no queries) and the site layout alone (login, session, user and
base.html, no page content)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import path

from alwrity_persona.urls import urlpatterns as app_urlpatterns


def bare(request):
    return HttpResponse("ok", content_type="text/plain")


@login_required
def layout(request):
    return render(request, "base.html")


urlpatterns = [
    path("bench/bare/", bare, name="bench_bare"),
    path("bench/layout/", layout, name="bench_layout"),
    *app_urlpatterns,
]
