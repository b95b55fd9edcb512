"""Per-user hourly limits on uploads, training and generation (Django cache; Redis in production)."""

import time

from django.conf import settings
from django.core.cache import cache

ACTION_WORDS = {"website_fetch": "website"}  # how an action reads in the message, where its key does not


class RateLimited(Exception):
    def __init__(self, action: str, limit: int):
        words = ACTION_WORDS.get(action, action)
        super().__init__(f"You have reached the limit of {limit} {words} requests per hour. Please try again later.")


def check_rate_limit(user, action: str) -> None:
    """Count one `action` for `user` in the current hour; raise RateLimited past the limit."""
    limit = settings.RATE_LIMITS[action]
    key = f"ratelimit:{action}:{user.pk}:{int(time.time() // 3600)}"
    cache.add(key, 0, timeout=3600)
    if cache.incr(key) > limit:
        raise RateLimited(action, limit)
