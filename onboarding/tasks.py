"""Thin tasks: load by id, call a service."""

from django.tasks import task


@task
def analyse_persona_style(persona_id: int) -> None:
    from onboarding.services import run_style_analysis

    run_style_analysis(persona_id)
