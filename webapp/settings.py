"""Django settings, read from the environment (see .env.example for every variable).

Defaults suit a laptop: SQLite under var/, the local Redis, DEBUG on. Production
sets DEBUG=0, SECRET_KEY, ALLOWED_HOSTS and DATABASE_URL; then
``manage.py check --deploy`` passes with no warnings.
"""

from __future__ import annotations

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
# A .env file in the repo root is optional; the real environment wins.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)
if DEBUG:
    SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-change-me-" + "x" * 32)
else:
    SECRET_KEY = env.str("SECRET_KEY")  # required: fails loudly when missing
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
# Parallel developers/CI jobs can point tests at their own database name.
if env.str("TEST_DATABASE_NAME", default=""):
    DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Web, worker and beat write concurrently: wait for the lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
RUNS_ROOT = Path(env.str("RUNS_ROOT", default=str(VAR_DIR / "runs")))
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
PREPARED_ROOT = Path(env.str("PREPARED_ROOT", default=str(VAR_DIR / "prepared")))
MEDIA_URL = "/media/"
# Server folders under which users may register local base models (comma-separated).
# Empty = any absolute directory (fine on a laptop); set it on a shared server so a
# user cannot probe the file system through the model form.
BASE_MODEL_ROOTS = env.list("BASE_MODEL_ROOTS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "webapp.accounts",
    "webapp.datasets",
    "webapp.basemodels",
    "webapp.runs",
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
    "webapp.accounts.middleware.LoginRequiredMiddleware",
]

ROOT_URLCONF = "webapp.urls"
ASGI_APPLICATION = "webapp.asgi.application"
WSGI_APPLICATION = "webapp.wsgi.application"

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

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # socket_timeout above channels_redis's 5 s blocking read: with redis-py 8 the
        # default timeout kills idle websocket readers (django/channels_redis#422).
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
            "capacity": 1000,
            "expiry": 30,
        },
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))


def _plotly_js_dir() -> Path:
    """plotly.min.js ships inside the plotly Python package: serve that copy, never a CDN."""
    import plotly

    return Path(plotly.__file__).parent / "package_data"


STATICFILES_DIRS = [BASE_DIR / "static", ("vendor/plotly", _plotly_js_dir())]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# Uploads: chunked, resumable; limits are enforced by the server, never trusted from the browser.
UPLOAD_CHUNK_BYTES = env.int("UPLOAD_CHUNK_BYTES", default=8 * 1024 * 1024)
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=50 * 1024**3)
UPLOAD_USER_QUOTA_BYTES = env.int("UPLOAD_USER_QUOTA_BYTES", default=200 * 1024**3)
UPLOAD_EXTENSIONS = env.list("UPLOAD_EXTENSIONS", default=[".jsonl", ".jsonl.gz", ".jsonl.zst"])
# An upload with no chunk for this long is deleted (file and quota) by an hourly beat task.
UPLOAD_ABANDON_HOURS = env.int("UPLOAD_ABANDON_HOURS", default=48)
DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_CHUNK_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# Workers and runs.
RUN_STOP_GRACE_SECONDS = env.int("RUN_STOP_GRACE_SECONDS", default=120)
RUN_HEARTBEAT_SECONDS = env.int("RUN_HEARTBEAT_SECONDS", default=10)
RUN_LOST_AFTER_SECONDS = env.int("RUN_LOST_AFTER_SECONDS", default=120)
WORKER_GPUS = env.int("WORKER_GPUS", default=-1)  # -1: detect with torch.cuda

# Celery: see worker/celery_app.py for why each value is what it is.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL)

# Production hardening; `manage.py check --deploy` passes with DEBUG=0.
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True

# Tests use a fast hasher (set by tests/conftest.py); production keeps Django's default.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
