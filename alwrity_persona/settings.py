"""The only settings module. Everything that differs between a laptop and production comes
from the environment; with no environment at all the app runs on the embedded default:
SQLite (WAL), encrypted local media, the database task queue and the offline providers."""

import os
from decimal import Decimal
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

DEV_SECRET_KEY = "dev-only-insecure-key-never-use-in-production"
DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default=DEV_SECRET_KEY)
if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured("Set SECRET_KEY: the development key is refused when DEBUG is off.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_tasks_db",
    "personas",
    "onboarding",
    "media_pipeline",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "alwrity_persona.urls"
WSGI_APPLICATION = "alwrity_persona.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while the worker writes; IMMEDIATE avoids lock upgrades.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file (not :memory:) so the browser tests' worker process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": f"/tmp/alwrity-test-{os.getpid()}.sqlite3"}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (rate limits) --------------------------------------------------------------------
# Rate limits count in the cache, so every web process must share it: with DEBUG off a
# per-process memory cache would multiply each limit by the number of processes.
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
elif not DEBUG:
    raise ImproperlyConfigured(
        "Set REDIS_URL (e.g. redis://127.0.0.1:6379/0): with DEBUG off the per-user rate limits need a cache "
        "shared by every web process."
    )
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Background tasks -----------------------------------------------------------------------
# Embedded default: the database queue (worker: `manage.py db_worker`).
# TASKS_URL=redis://... switches to RQ (worker:
# `manage.py rqworker default --job-class django_tasks_rq.Job --with-scheduler`; the scheduler is
# what runs tasks enqueued with `run_after`, such as provider polls and retries).
TASKS_URL = env("TASKS_URL", default="")
if TASKS_URL.startswith("redis"):
    INSTALLED_APPS.append("django_rq")
    RQ_QUEUES = {"default": {"URL": TASKS_URL, "DEFAULT_TIMEOUT": 1800}}
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
else:
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

# --- Auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static and media -----------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(BASE_DIR / "media")))

# Biometric media (voice samples, photos) and generated media are encrypted at rest with
# Fernet. MEDIA_ENCRYPTION_KEYS is a comma-separated list, newest first (MultiFernet rotation).
MEDIA_ENCRYPTION_KEYS = env.list("MEDIA_ENCRYPTION_KEYS", default=[])
if not MEDIA_ENCRYPTION_KEYS and not DEBUG:
    raise ImproperlyConfigured("Set MEDIA_ENCRYPTION_KEYS: media must be encrypted with a real key.")

AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME", default="")
if AWS_STORAGE_BUCKET_NAME:
    MEDIA_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env("AWS_S3_ENDPOINT_URL", default=None),
            "region_name": env("AWS_S3_REGION_NAME", default=None),
            "access_key": env("AWS_ACCESS_KEY_ID", default=None),
            "secret_key": env("AWS_SECRET_ACCESS_KEY", default=None),
            "default_acl": "private",
            "querystring_auth": True,
            "querystring_expire": 300,
            "file_overwrite": False,
            "object_parameters": {"ServerSideEncryption": "AES256"},
        },
    }
else:
    MEDIA_STORAGE = {"BACKEND": "media_pipeline.storage.EncryptedFileSystemStorage"}

STORAGES = {
    "default": MEDIA_STORAGE,
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Uploads --------------------------------------------------------------------------------
MAX_AUDIO_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_PHOTO_UPLOAD_BYTES = 15 * 1024 * 1024
# Anything larger than this is refused while it streams in (see media_pipeline.uploads).
MAX_UPLOAD_BYTES = MAX_AUDIO_UPLOAD_BYTES + 1024 * 1024
FILE_UPLOAD_HANDLERS = [
    "media_pipeline.uploads.SizeLimitUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# --- Security (production) ------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# How many reverse proxies of ours sit in front of the app. 0: the client address is REMOTE_ADDR;
# N: it is the Nth address from the right of X-Forwarded-For (the one our outermost proxy saw).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- Audio sample quality thresholds --------------------------------------------------------
AUDIO_LIMITS = {
    "max_bytes": MAX_AUDIO_UPLOAD_BYTES,
    "min_seconds": 10.0,  # provider hard limit
    "max_seconds": 300.0,  # provider hard limit
    "recommended_min_seconds": 60.0,
    "recommended_max_seconds": 180.0,
    "min_speech_ratio": 0.70,
    "snr_ok_db": 25.0,
    "snr_error_db": 15.0,
    "max_clipping_ratio": 0.001,
    "loudness_min_lufs": -23.0,
    "loudness_max_lufs": -16.0,
    "min_sample_rate": 22_050,
    "decode_timeout_seconds": 60,
}
PHOTO_LIMITS = {
    "max_bytes": MAX_PHOTO_UPLOAD_BYTES,
    "max_pixels": 40_000_000,
    "min_side": 512,
    "min_face_height": 200,
    "min_sharpness": 60.0,
    "min_brightness": 60.0,
    "max_brightness": 200.0,
    "portrait_size": 512,
}

# --- Providers ------------------------------------------------------------------------------
# "offline" needs no keys and works on a fresh laptop; "minimax"/"wavespeed" need API keys.
VOICE_PROVIDER = env("VOICE_PROVIDER", default="offline")
AVATAR_PROVIDER = env("AVATAR_PROVIDER", default="offline")
FALLBACK_VOICE_PROVIDER = env("FALLBACK_VOICE_PROVIDER", default="gtts")
MINIMAX_API_KEY = env("MINIMAX_API_KEY", default="")
MINIMAX_BASE_URL = env("MINIMAX_BASE_URL", default="https://api.minimax.io")
MINIMAX_TTS_MODEL = env("MINIMAX_TTS_MODEL", default="speech-02-hd")
MINIMAX_SYNC_TEXT_LIMIT = 3000  # characters; longer text uses t2a_async_v2
WAVESPEED_API_KEY = env("WAVESPEED_API_KEY", default="")
WAVESPEED_BASE_URL = env("WAVESPEED_BASE_URL", default="https://api.wavespeed.ai")
WAVESPEED_SHORT_MODEL = "wavespeed-ai/hunyuan-avatar"
WAVESPEED_LONG_MODEL = "wavespeed-ai/infinitetalk"
WAVESPEED_SHORT_MAX_SECONDS = 120
WAVESPEED_LONG_MAX_SECONDS = 600
# gTTS sends the text to Google: off unless asked for, so a fresh laptop stays offline.
GTTS_ENABLED = env.bool("GTTS_ENABLED", default=False)
HTTP_CONNECT_TIMEOUT = 5.0
HTTP_READ_TIMEOUT = 60.0
HTTP_MAX_RETRIES = 4
# The user's website (steps 1-5) is read within this many seconds in all, redirects included.
WEBSITE_FETCH_DEADLINE_SECONDS = 15.0
HTTP_BACKOFF_SECONDS = 1.0  # first retry waits up to this (full jitter), doubling each attempt
HTTP_BACKOFF_MAX_SECONDS = 20.0
HTTP_RETRY_AFTER_MAX_SECONDS = 30.0  # cap on a provider's Retry-After so a worker never stalls long
MINIMAX_ASYNC_TEXT_LIMIT = 50_000  # characters per t2a_async_v2 task (provider limit)
# A long narration task is queried once per job poll (PROVIDER_POLL_SECONDS; the API allows 10
# queries a second) and given up after this long.
MINIMAX_ASYNC_MAX_WAIT_SECONDS = 600
PROVIDER_POLL_SECONDS = 5
JOB_DEADLINE_SECONDS = {"voice_clone": 900, "avatar_create": 1800, "render": 3600}
# When a render is submitted its job's deadline grows by this many seconds per second of media
# (by model id, else provider name): WaveSpeed takes 10-30 s of wall time per second of video.
RENDER_SECONDS_PER_MEDIA_SECOND = {
    "wavespeed-ai/hunyuan-avatar": 30,
    "wavespeed-ai/infinitetalk": 30,
    "default": 5,
}
JOB_LEASE_SECONDS = 120

# --- Prices (USD) and tiers -----------------------------------------------------------------
PRICES = {
    "voice_clone": Decimal("0.75"),
    "voice_minute": Decimal("0.02"),
    "avatar_5s_480p": Decimal("0.15"),
    "avatar_5s_720p": Decimal("0.30"),
    "avatar_min_seconds": 5,
    "offline": Decimal("0"),
    "gtts": Decimal("0"),
}
# Which capabilities each tier has; None means unlimited monthly generations.
TIERS = {
    "free": {"voice": False, "avatar": False, "voice_clone_included": False, "monthly_generations": 20},
    "basic": {"voice": True, "avatar": False, "voice_clone_included": False, "monthly_generations": 100},
    "pro": {"voice": True, "avatar": True, "voice_clone_included": True, "monthly_generations": 500},
    "enterprise": {"voice": True, "avatar": True, "voice_clone_included": True, "monthly_generations": None},
}

# --- Rate limits (per user, per hour) --------------------------------------------------------
RATE_LIMITS = {"upload": 30, "training": 10, "generation": 60, "export": 10, "website_fetch": 20}

# --- Optional LLM enrichment of the writing analysis ----------------------------------------
LLM_BASE_URL = env("LLM_BASE_URL", default="")
LLM_API_KEY = env("LLM_API_KEY", default="")
LLM_MODEL = env("LLM_MODEL", default="gpt-4o-mini")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}
