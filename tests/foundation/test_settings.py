"""Settings come only from the environment; each case runs in a fresh interpreter."""

import json
import os
import subprocess
import sys

from django.conf import settings as django_settings

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "a-long-random-production-secret-key-with-enough-entropy-1234567890",
    "ALLOWED_HOSTS": "persona.example.com",
    "MEDIA_ENCRYPTION_KEYS": "aGVsbG8taGVsbG8taGVsbG8taGVsbG8taGVsbG8tMTI=",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
    "REDIS_URL": "redis://127.0.0.1:6379/2",
}
PROBE = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({
    "engine": s.DATABASES["default"]["ENGINE"],
    "media": s.STORAGES["default"]["BACKEND"],
    "media_options": s.STORAGES["default"].get("OPTIONS", {}),
    "static": s.STORAGES["staticfiles"]["BACKEND"],
    "tasks": s.TASKS["default"]["BACKEND"],
    "voice": s.VOICE_PROVIDER,
    "avatar": s.AVATAR_PROVIDER,
    "cache": s.CACHES["default"]["BACKEND"],
    "gtts": s.GTTS_ENABLED,
    "proxies": s.TRUSTED_PROXY_COUNT,
}, default=str))
"""


def run(code_or_args, **env_overrides):
    # The browser tests relax async safety for their own process; a fresh interpreter must not inherit that.
    ignored = {*PRODUCTION, "TASKS_URL", "REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in ignored}
    env.update(DJANGO_SETTINGS_MODULE="alwrity_persona.settings", **env_overrides)
    args = code_or_args if isinstance(code_or_args, list) else ["-c", code_or_args]
    return subprocess.run(
        [sys.executable, *args], cwd=django_settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )


def probe(**env):
    result = run(PROBE, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_no_environment_runs_the_embedded_default():
    values = probe()
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["media"] == "media_pipeline.storage.EncryptedFileSystemStorage"
    assert values["tasks"] == "django_tasks_db.DatabaseBackend"
    assert values["voice"] == values["avatar"] == "offline"
    assert values["cache"].endswith("LocMemCache")
    assert values["gtts"] is False  # nothing leaves the machine unless asked for
    assert values["proxies"] == 0


def test_environment_switches_to_postgres_s3_redis_and_rq():
    values = probe(
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/test",
        AWS_STORAGE_BUCKET_NAME="persona-media",
        TASKS_URL="redis://127.0.0.1:6379/1",
        REDIS_URL="redis://127.0.0.1:6379/2",
        VOICE_PROVIDER="minimax",
        AVATAR_PROVIDER="wavespeed",
    )
    assert values["engine"] == "django.db.backends.postgresql"
    assert values["media"] == "storages.backends.s3.S3Storage"
    assert values["media_options"]["default_acl"] == "private"
    assert values["media_options"]["querystring_auth"] is True
    assert values["media_options"]["object_parameters"] == {"ServerSideEncryption": "AES256"}
    assert values["tasks"] == "django_tasks_rq.RQBackend"
    assert values["cache"].endswith("RedisCache")
    assert (values["voice"], values["avatar"]) == ("minimax", "wavespeed")


def test_gtts_and_trusted_proxies_are_switched_on_by_the_environment():
    values = probe(GTTS_ENABLED="true", TRUSTED_PROXY_COUNT="1")
    assert values["gtts"] is True
    assert values["proxies"] == 1


def test_production_shares_the_rate_limit_cache_in_redis():
    assert probe(**PRODUCTION)["cache"].endswith("RedisCache")


def test_production_without_redis_is_refused_rather_than_counting_per_process():
    without_redis = {k: v for k, v in PRODUCTION.items() if k != "REDIS_URL"}
    result = run(PROBE, **without_redis)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "Set REDIS_URL" in result.stderr


def test_production_serves_static_files_compressed_and_hashed():
    assert probe(**PRODUCTION)["static"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"


def test_the_development_secret_key_is_refused_when_debug_is_off():
    result = run(PROBE, DEBUG="false", MEDIA_ENCRYPTION_KEYS=PRODUCTION["MEDIA_ENCRYPTION_KEYS"])
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_media_encryption_keys_are_required_when_debug_is_off():
    result = run(PROBE, DEBUG="false", SECRET_KEY=PRODUCTION["SECRET_KEY"], REDIS_URL=PRODUCTION["REDIS_URL"])
    assert result.returncode != 0
    assert "MEDIA_ENCRYPTION_KEYS" in result.stderr


def test_check_deploy_reports_nothing_with_production_settings():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "DEBUG"], **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
