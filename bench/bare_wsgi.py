"""WSGI entry point for the page benchmarks: the app's own WSGI application on bench settings
(the app's URLs plus the bare baseline view at /bench/bare/)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_settings")

from alwrity_persona.wsgi import application  # noqa: E402

__all__ = ["application"]
