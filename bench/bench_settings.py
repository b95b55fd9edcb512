"""Settings for the benchmarks: the app's own settings, plus the bench URLconf (one bare view)
and two loopback allowances. Nothing here changes how the app itself behaves."""

import os

from alwrity_persona.settings import *  # noqa: F403

ROOT_URLCONF = "bench_urls"
# The load generators talk plain HTTP on loopback, where Secure cookies would never be sent back.
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
# collectstatic goes to the bench's temp dir, never into the checkout.
STATIC_ROOT = os.environ.get("BENCH_STATIC_ROOT", STATIC_ROOT)  # noqa: F405
