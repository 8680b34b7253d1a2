"""Settings for ccbridge, read from the environment (and an optional .env file).

Every value has a safe development default. `BRIDGE_ENV=production` turns on the
production mode, which refuses to start with a default secret, a missing
encryption key or the ConnectyCube sandbox switched on.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
env_file = env.str("BRIDGE_ENV_FILE", default=str(BASE_DIR / ".env"))
if Path(env_file).is_file():
    env.read_env(env_file)

BRIDGE_ENV = env.str("BRIDGE_ENV", default="development")
if BRIDGE_ENV not in ("development", "production"):
    raise ImproperlyConfigured(f"BRIDGE_ENV must be 'development' or 'production', not {BRIDGE_ENV!r}")
PRODUCTION = BRIDGE_ENV == "production"

DEV_SECRET_KEY = "django-insecure-ccbridge-development-only"
SECRET_KEY = env.str("SECRET_KEY", default=DEV_SECRET_KEY)
DEBUG = env.bool("DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Fernet keys for secrets at rest, newest first. Encryption uses the first;
# decryption tries them all, so adding a key in front and running
# `manage.py rotate_keys` rotates without downtime.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])

# The ConnectyCube-compatible sandbox (REST + chat) served by the web role.
CONNECTYCUBE_SANDBOX = env.bool("CONNECTYCUBE_SANDBOX", default=not PRODUCTION)

if PRODUCTION:
    problems = []
    if SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 32:
        problems.append("SECRET_KEY is unset, the development default, or shorter than 32 characters")
    if not FIELD_ENCRYPTION_KEYS:
        problems.append("FIELD_ENCRYPTION_KEYS is unset (generate one with `manage.py genkey`)")
    if CONNECTYCUBE_SANDBOX:
        problems.append("CONNECTYCUBE_SANDBOX must be off in production")
    if not ALLOWED_HOSTS:
        problems.append("ALLOWED_HOSTS is empty")
    if problems:
        raise ImproperlyConfigured("Refusing to start in production: " + "; ".join(problems))

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "mappings",
    "calls",
    "media",
    "edge",
    "agent",
    "sandbox",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # daphne serves no static files; WhiteNoise does, in development and production alike.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "bridgeproject.urls"

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
    },
]

WSGI_APPLICATION = "bridgeproject.wsgi.application"
ASGI_APPLICATION = "bridgeproject.asgi.application"

VAR_DIR = Path(env.str("BRIDGE_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)  # the SQLite file, logs and pid files of `make run`

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several roles (web, ami, edge, workers) write to the same file.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    }
}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"media.tasks.*": {"queue": "media"}}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Media sessions outlive their task on the process's own loop: never recycle a worker process
# under live calls, and take one task at a time so a busy process doesn't hoard new calls.
CELERY_WORKER_MAX_TASKS_PER_CHILD = None
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

# The media role: where RTP binds (and what goes in our SDP), the port range, ICE host
# addresses (empty: scan the interfaces; aioice skips 127.0.0.1, so loopback-only setups name
# it) and servers, and how many calls one worker process carries.
MEDIA_RTP_HOST = env.str("MEDIA_RTP_HOST", default="127.0.0.1")
MEDIA_RTP_ADVERTISED_HOST = env.str("MEDIA_RTP_ADVERTISED_HOST", default="")
MEDIA_RTP_PORTS = env.str("MEDIA_RTP_PORTS", default="20000-29999")
MEDIA_ICE_HOST_ADDRESSES = env.list("MEDIA_ICE_HOST_ADDRESSES", default=[])
MEDIA_ICE_SERVERS = env.json("MEDIA_ICE_SERVERS", default=[])
MEDIA_MAX_SESSIONS = env.int("MEDIA_MAX_SESSIONS", default=100)

# The SIP edge (`manage.py runedge`): where Asterisk's ccbridge trunk reaches it, the host in our
# Contact when that differs, and its patience with workers and WebRTC.
EDGE_SIP_HOST = env.str("EDGE_SIP_HOST", default="127.0.0.1")
EDGE_SIP_PORT = env.int("EDGE_SIP_PORT", default=5070)
EDGE_PUBLIC_HOST = env.str("EDGE_PUBLIC_HOST", default="")
EDGE_MEDIA_START_TIMEOUT = env.float("EDGE_MEDIA_START_TIMEOUT", default=5.0)
EDGE_ICE_TIMEOUT = env.float("EDGE_ICE_TIMEOUT", default=20.0)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en")
LANGUAGES = [("en", _("English")), ("pt-br", _("Brazilian Portuguese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(VAR_DIR / "static"))
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # WhiteNoise warns when it is missing
STATICFILES_DIRS = [BASE_DIR / "static"]
# The official ConnectyCube JS SDK, installed by `npm ci` (package.json), served as
# /static/vendor/connectycube/connectycube.min.js to the agent app; never copied into the repo.
# `agent.W001` warns when it is missing.
CONNECTYCUBE_SDK_DIR = BASE_DIR / "node_modules" / "connectycube" / "dist"
if CONNECTYCUBE_SDK_DIR.is_dir():
    STATICFILES_DIRS.append(("vendor/connectycube", CONNECTYCUBE_SDK_DIR))
WHITENOISE_USE_FINDERS = DEBUG  # serve straight from the apps in development, no collectstatic
# Django's user uploads; kept apart from the `media` app.
MEDIA_ROOT = env.str("MEDIA_ROOT", default=str(VAR_DIR / "uploads"))
MEDIA_URL = "uploads/"

LOGIN_URL = "admin:login"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# CDRs: the region for numbers without a country code, and how many trailing digits of
# caller numbers CSV exports mask (0 shows them whole).
PHONE_DEFAULT_REGION = env.str("PHONE_DEFAULT_REGION", default="BR")
CDR_EXPORT_MASK_DIGITS = env.int("CDR_EXPORT_MASK_DIGITS", default=0)

# ICE servers of the agent app, as JSON (e.g. '[{"urls": "stun:stun.example.com:3478"}]').
# Unset: none for sandbox apps (loopback needs none), the SDK's defaults for other apps.
AGENT_ICE_SERVERS = env.json("AGENT_ICE_SERVERS", default=None)

# Seconds an AMI action (hangup, transfer, ...) may wait for the listener's answer.
AMI_ACTION_TIMEOUT = env.float("AMI_ACTION_TIMEOUT", default=10.0)

# Timeouts (seconds) for talking to ConnectyCube's REST API, e.g. "Test credentials".
CONNECTYCUBE_HTTP_TIMEOUT = env.float("CONNECTYCUBE_HTTP_TIMEOUT", default=10.0)

if PRODUCTION:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
