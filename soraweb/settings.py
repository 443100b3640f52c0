"""soraweb's only settings file: everything comes from the environment.

With nothing set it runs on a bare machine: SQLite, media and a generated secret
key under DATA_DIR and an embedded Redis. `make run` adds the gateway simulator
(demo mode) when no SORA_API_KEY is set.
"""

import os
import secrets
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from soraweb import embedded_redis

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name, default=""):
    return os.environ.get(name, default).strip()


def env_bool(name, default=False):
    value = env_str(name).lower()
    if not value:
        return default
    if value in ("1", "true", "on"):
        return True
    if value in ("0", "false", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be one of 1/true/on or 0/false/off, not {value!r}")


def env_int(name, default):
    value = env_str(name)
    try:
        return int(value) if value else default
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


def env_list(name, default=""):
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_limit(name, default, kind=int):
    """A limit: unset gives the default; empty or 0 means no limit (0)."""
    if name not in os.environ:
        return default
    value = env_str(name) or "0"
    try:
        number = kind(value)
        if not 0 <= number < 10**9:
            raise ValueError(value)
    except (ValueError, InvalidOperation):
        raise ImproperlyConfigured(
            f"{name} must be a number, 0 or empty for no limit, not {value!r}"
        ) from None
    return number


def env_secret(name, default=""):
    """Read NAME, or the file named by NAME_FILE (Docker secrets)."""
    path = env_str(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
    return env_str(name, default)


def shares_services(database_url, redis_url):
    """Whether this machine uses a database server and a Redis that other machines may share.

    SQLite and the embedded Redis live in one data folder, so they are one machine's.
    """
    return bool(redis_url) and urlsplit(database_url).scheme not in ("", "sqlite")


DATA_DIR = Path(env_str("DATA_DIR") or BASE_DIR / "data").resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY and shares_services(env_str("DATABASE_URL"), env_str("REDIS_URL")):
    # Sessions, CSRF tokens and signed links made by one machine must verify on the
    # others: a key generated per data folder would differ on each.
    raise ImproperlyConfigured(
        "SECRET_KEY must be set, and the same, on every machine: DATABASE_URL and REDIS_URL "
        "name shared servers, so web and workers may run on several machines, and a key "
        "generated on each would not read the others' sign-ins and signed links."
    )
if not SECRET_KEY:
    # Generated once per data folder so sessions survive restarts without setup.
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    SECRET_KEY = key_file.read_text().strip()
if len(SECRET_KEY) < 32 or SECRET_KEY.startswith(("change-me", "django-insecure")):
    raise ImproperlyConfigured("SECRET_KEY is missing or a placeholder: set a long random value.")

# Behind an HTTPS proxy: secure cookies, HSTS and a redirect to https.
SECURE_SSL = env_bool("SECURE_SSL", False)
if SECURE_SSL:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 365 * 24 * 3600
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    "csp",
    # Only for the Swagger UI files it ships, served from our static files (no CDN).
    "ninja",
    "jobs",
    "handover",
    "library",
    "api",
    "spend",
    "audit",
    "ops",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every view needs sign-in unless marked @login_not_required (sign-in, first run,
    # /healthz, the signed reference-image links).
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "jobs.middleware.private_pages",
    "jobs.middleware.admin_input_guard",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "soraweb.urls"
WSGI_APPLICATION = "soraweb.wsgi.application"

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
                "jobs.context_processors.soraweb",
                "spend.context_processors.budget_banner",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}", conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, workers and beat share one file: WAL lets readers run beside the writer,
    # IMMEDIATE makes writers queue instead of failing with "database is locked".
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # Worker processes in tests must see the test database, so it is a file too.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}
else:
    # A kept connection that died with a database restart is noticed and replaced on
    # its next use, so web and workers carry on by themselves once it is back.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "jobs:gallery"
LOGOUT_REDIRECT_URL = "login"
# django-axes first: it refuses a locked-out sign-in before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# --- Sign-in throttling (django-axes) -------------------------------------------
# After AXES_FAILURE_LIMIT wrong passwords for one username from one address, that
# pair is locked out for the cool-off; other people and other addresses are not.
AXES_FAILURE_LIMIT = env_int("SORAWEB_SIGNIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("SORAWEB_SIGNIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "jobs.security.client_ip"
# How many proxies in front of Django append to X-Forwarded-For (compose's nginx: 1).
# 0 trusts only the socket's address; too high a number would let a client pick its own.
SORAWEB_TRUSTED_PROXY_COUNT = env_int("SORAWEB_TRUSTED_PROXY_COUNT", 0)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The image collects into its own folder at build time (the Dockerfile sets it), not the data volume.
STATIC_ROOT = Path(env_str("STATIC_ROOT") or DATA_DIR / "static")
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns on every start without it.
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT") or DATA_DIR / "media")
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Content-hashed names, cached for good, once collectstatic has run; plain names before.
    "staticfiles": {"BACKEND": "soraweb.staticfiles.StaticStorage"},
}
# Media on S3-compatible object storage when a bucket is named (django-storages);
# browsers then fetch files through short-lived signed URLs.
S3_BUCKET = env_str("S3_BUCKET")
if S3_BUCKET:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": env_str("S3_ENDPOINT_URL") or None,
            "region_name": env_str("S3_REGION") or None,
            "access_key": env_secret("S3_ACCESS_KEY_ID") or None,
            "secret_key": env_secret("S3_SECRET_ACCESS_KEY") or None,
            "querystring_auth": True,
            "querystring_expire": 3600,
            # Signature v4: what AWS's newer regions and S3-compatible servers require.
            "signature_version": "s3v4",
            "file_overwrite": False,
        },
    }
# Behind nginx (docker-compose.yml), Django checks access and nginx sends the
# file: the internal location that maps to MEDIA_ROOT, e.g. "/protected-media/".
MEDIA_ACCEL_PREFIX = env_str("MEDIA_ACCEL_PREFIX")
WHITENOISE_USE_FINDERS = True
WHITENOISE_MANIFEST_STRICT = False
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = 2
# The first handler refuses a file once it passes the 5 MB cap, while it streams in:
# nothing larger is ever kept in memory or written to disk.
FILE_UPLOAD_HANDLERS = [
    "jobs.uploads.CappedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# --- Content-Security-Policy (django-csp): no inline scripts or styles anywhere ---
_media_origins = []
if S3_BUCKET:
    # Videos, posters and images come from signed URLs on the bucket's host.
    _endpoint = urlsplit(env_str("S3_ENDPOINT_URL"))
    _region = env_str("S3_REGION")
    _media_origins = (
        [f"{_endpoint.scheme}://{_endpoint.netloc}", f"{_endpoint.scheme}://{S3_BUCKET}.{_endpoint.netloc}"]
        if _endpoint.netloc
        else [f"https://{S3_BUCKET}.s3.amazonaws.com"]
        + ([f"https://{S3_BUCKET}.s3.{_region}.amazonaws.com"] if _region else [])
    )
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        # blob: is the create form's preview of the chosen image.
        "img-src": ["'self'", "blob:", "data:", *_media_origins],
        "media-src": ["'self'", *_media_origins],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # A refused request (403, 400, 404) is one line, not a traceback.
    "filters": {"one_line_4xx": {"()": "jobs.logfilters.OneLineClientErrors"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["one_line_4xx"]}
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {"jobs": {"level": LOG_LEVEL, "handlers": ["console"], "propagate": False}},
}

# --- The gateway (docs/gateway.md) ----------------------------------------------
SORA_API_KEY = env_secret("SORA_API_KEY")
# Set by `make run` when it starts the simulator in place of the gateway: every page says so.
SORA_DEMO_MODE = env_bool("SORA_DEMO_MODE", False)
SORA_API_BASE_URL = env_str("SORA_API_BASE_URL", "https://zcbservice.aizfw.cn/kyyReactApiServer").rstrip("/")
SORA_CREATE_PATH = env_str("SORA_CREATE_PATH", "/v1/sora/videos")
SORA_RESULT_PATH = env_str("SORA_RESULT_PATH", "/v1/result/{id}")
SORA_CONNECT_TIMEOUT = env_int("SORA_CONNECT_TIMEOUT", 10)
SORA_READ_TIMEOUT = env_int("SORA_READ_TIMEOUT", 60)
# The gateway asks for 30-60 s between polls; demos and tests may go as low as 1.
SORA_POLL_INTERVAL = max(1, env_int("SORA_POLL_INTERVAL", 30))
SORA_JOB_DEADLINE = env_int("SORA_JOB_DEADLINE", 2 * 3600)
SORA_MAX_POLL_ERRORS = env_int("SORA_MAX_POLL_ERRORS", 10)
SORA_MAX_SUBMIT_ATTEMPTS = env_int("SORA_MAX_SUBMIT_ATTEMPTS", 5)
SORA_SWEEP_INTERVAL = env_int("SORA_SWEEP_INTERVAL", 5)
SORA_DOWNLOAD_TIMEOUT = env_int("SORA_DOWNLOAD_TIMEOUT", 600)
SORA_MAX_DOWNLOAD_ATTEMPTS = env_int("SORA_MAX_DOWNLOAD_ATTEMPTS", 5)
SORA_MAX_VIDEO_BYTES = env_int("SORA_MAX_VIDEO_BYTES", 1024 * 1024 * 1024)
SORA_TRUSTED_PRIVATE_HOSTS = env_list("SORA_TRUSTED_PRIVATE_HOSTS")
# Where the gateway can fetch reference images from; unset, reference images are refused.
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL").rstrip("/")

# --- Team limits ---------------------------------------------------------------
# "team": everyone signed in sees every job; "own": people see only their own, staff see all.
SORAWEB_GALLERY_SCOPE = env_str("SORAWEB_GALLERY_SCOPE", "team").lower()
if SORAWEB_GALLERY_SCOPE not in ("team", "own"):
    raise ImproperlyConfigured(f"SORAWEB_GALLERY_SCOPE must be team or own, not {SORAWEB_GALLERY_SCOPE!r}")
# Defaults for every user, each changeable per user in admin; 0 means no limit.
# The gateway reports a cost per video without saying in what; shown beside every cost.
SORAWEB_COST_UNIT = env_str("SORAWEB_COST_UNIT", "credits")
SORAWEB_LIMIT_ACTIVE_JOBS = env_limit("SORAWEB_LIMIT_ACTIVE_JOBS", 5)
SORAWEB_LIMIT_JOBS_PER_DAY = env_limit("SORAWEB_LIMIT_JOBS_PER_DAY", 50)
# In the gateway's currency, as its `cost` field reports it.
SORAWEB_LIMIT_MONTHLY_SPEND = env_limit("SORAWEB_LIMIT_MONTHLY_SPEND", Decimal("100"), kind=Decimal)
# The desk lists a job still in progress this long after it was made.
SORAWEB_STUCK_AFTER_MINUTES = env_int("SORAWEB_STUCK_AFTER_MINUTES", 30)
# How often an open tab asks whether the person's jobs finished (static/js/notify.js).
SORAWEB_NOTIFY_POLL_SECONDS = env_int("SORAWEB_NOTIFY_POLL_SECONDS", 10)
SORAWEB_NOTIFY_HIDDEN_POLL_SECONDS = env_int("SORAWEB_NOTIFY_HIDDEN_POLL_SECONDS", 30)

# --- The JSON API and webhooks (docs/api.md) --------------------------------------
# Requests a minute per token (or signed-in person); 0: no limit.
SORAWEB_API_RATE_LIMIT = env_int("SORAWEB_API_RATE_LIMIT", 120)
# A failed delivery is retried after BACKOFF s, doubling (at most an hour), until GIVE_UP_AFTER s.
SORAWEB_WEBHOOK_BACKOFF = env_int("SORAWEB_WEBHOOK_BACKOFF", 30)
SORAWEB_WEBHOOK_GIVE_UP_AFTER = env_int("SORAWEB_WEBHOOK_GIVE_UP_AFTER", 24 * 3600)
SORAWEB_WEBHOOK_CONNECT_TIMEOUT = env_int("SORAWEB_WEBHOOK_CONNECT_TIMEOUT", 5)
SORAWEB_WEBHOOK_READ_TIMEOUT = env_int("SORAWEB_WEBHOOK_READ_TIMEOUT", 10)

# The whole team's per calendar month, changeable in admin (Team budget); 0 means none.
SORAWEB_TEAM_MONTHLY_BUDGET = env_limit("SORAWEB_TEAM_MONTHLY_BUDGET", Decimal("0"), kind=Decimal)
# Who a refusal at the budget tells people to ask; empty: the staff's usernames.
SORAWEB_BUDGET_CONTACT = env_str("SORAWEB_BUDGET_CONTACT")

# --- Operations (ops/) ----------------------------------------------------------
# Below this much free space where videos are stored (and where downloads are staged),
# /healthz fails its storage check, staff see a banner and new submissions wait.
SORAWEB_MIN_FREE_DISK_MB = env_int("SORAWEB_MIN_FREE_DISK_MB", 1024)
# A download that met a full disk tries again this often while the link is alive.
SORAWEB_STORAGE_RETRY_SECONDS = env_int("SORAWEB_STORAGE_RETRY_SECONDS", 300)
# How long a worker keeps trying to write a create call's answer while the database is
# away: that answer is a paid video known nowhere else.
SORAWEB_DB_OUTAGE_PATIENCE = env_int("SORAWEB_DB_OUTAGE_PATIENCE", 600)
# Videos (and posters) of finished jobs older than this are removed; 0 keeps them forever.
SORAWEB_KEEP_VIDEOS_DAYS = env_int("SORAWEB_KEEP_VIDEOS_DAYS", 0)

# --- Celery: the row is the truth, Redis only rings the doorbell ---------------
# Unset: the embedded Redis under DATA_DIR. Settings only name it; the processes that
# need it (runstack, a Celery worker or beat, the test setup) start it.
SORAWEB_EMBEDDED_REDIS = not env_str("REDIS_URL")
REDIS_URL = env_str("REDIS_URL") or embedded_redis.url(DATA_DIR)

CELERY_BROKER_URL = REDIS_URL
# Workers and beat outlive a Redis restart: they reconnect on their own, forever
# (the default gives up after 100 tries), and notice a silently dead connection.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_timeout": 10,
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "health_check_interval": 25,
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
# Every task is guarded by its row's state, so a redelivered message is harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Losing Redis must not kill the tasks running: a create call cut off mid-flight
# would leave a job "needs attention" and a download would wait out its lease.
# They finish and write their row; the unackable message is at most redelivered,
# and the row's state makes that a no-op.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_TASK_TIME_LIMIT = SORA_DOWNLOAD_TIMEOUT + 120
CELERY_TASK_SOFT_TIME_LIMIT = SORA_DOWNLOAD_TIMEOUT + 60
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "sweep": {"task": "jobs.tasks.sweep", "schedule": float(SORA_SWEEP_INTERVAL)},
    "webhooks": {"task": "api.tasks.webhook_sweep", "schedule": float(SORA_SWEEP_INTERVAL)},
    "retention": {"task": "jobs.tasks.remove_expired_videos", "schedule": 3600.0},
}
