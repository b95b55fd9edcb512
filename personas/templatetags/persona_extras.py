from django import template
from django.urls import reverse

from personas.charts import money as format_money

register = template.Library()


@register.filter
def money(value) -> str:
    return format_money(value or 0)


@register.filter
def studio_url(content_type: str) -> str:
    return reverse(f"personas:studio_{content_type}")


@register.filter
def duration(seconds) -> str:
    """0:42 or 12:05 for a media length."""
    minutes, secs = divmod(round(float(seconds or 0)), 60)
    return f"{minutes}:{secs:02d}"


@register.filter
def minutes(seconds) -> str:
    return f"{float(seconds or 0) / 60:.1f}"
