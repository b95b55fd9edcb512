"""Reads that views and services share. Every object a user touches is fetched through
`get_owned_or_404`, so another user's object is a 404, never a 403 that confirms it exists."""

from django.http import Http404
from django.shortcuts import get_object_or_404

from personas.models import WritingPersona


def get_owned_or_404(model_or_queryset, user, **lookup):
    queryset = model_or_queryset if hasattr(model_or_queryset, "filter") else model_or_queryset.objects
    if not user.is_authenticated:
        raise Http404
    return get_object_or_404(queryset.filter(user=user), **lookup)


def current_persona(user) -> WritingPersona | None:
    """The user's newest persona (the wizard creates one; older ones stay for history), with its
    user's subscription, which most pages that load the persona read."""
    return WritingPersona.objects.filter(user=user).select_related("user__subscription").first()
