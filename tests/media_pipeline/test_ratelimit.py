import pytest
from django.core.cache import cache

from media_pipeline.ratelimit import RateLimited, check_rate_limit


def test_each_user_has_their_own_hourly_budget(settings, owner, other_user):
    cache.clear()
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "upload": 2}
    check_rate_limit(owner, "upload")
    check_rate_limit(owner, "upload")
    with pytest.raises(RateLimited, match="limit of 2 upload requests per hour"):
        check_rate_limit(owner, "upload")
    check_rate_limit(other_user, "upload")
