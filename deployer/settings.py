"""Gantry's settings: every value comes from the environment (see .env.example).

The defaults just work on one box with zero configuration: SQLite in var/,
an embedded (filesystem) Celery broker, integrations off. Point DATABASE_URL
and REDIS_URL at PostgreSQL and Redis to run at scale.
"""

from __future__ import annotations

import datetime
import secrets
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from deployer.lib.private_file import private_dir, private_file_write

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# All of Gantry's own state on disk (SQLite, broker folders, git mirrors, SSH key).
VAR_DIR = Path(env.str("GANTRY_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()
private_dir(VAR_DIR)  # 0700: its database holds API tokens and sessions


def _secret_key() -> str:
    """Use SECRET_KEY if set; otherwise one generated once and kept in var/."""
    if key := env.str("SECRET_KEY", default=""):
        return key
    path = VAR_DIR / "secret_key"
    private_file_write(path, secrets.token_urlsafe(50).encode())  # kept if another process made it first
    return path.read_text().strip()


SECRET_KEY = _secret_key()
SECRET_KEY_FROM_ENV = bool(env.str("SECRET_KEY", default=""))  # else var/secret_key: part of every backup
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Absolute base URL of this Gantry, used in links sent out (Slack, GitHub).
# Links in Slack, the API and the CLI: by default where `make run`/`make serve` listen (GANTRY_PORT moves both).
_LOCAL = f"http://127.0.0.1:{env.int('GANTRY_PORT', default=8000)}"
GANTRY_BASE_URL = env.str("GANTRY_BASE_URL", default=_LOCAL).rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",  # API tokens, stored as digests (the key is shown once)
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Redoc and Swagger UI's files, served from here (/api/docs/): no CDN
    "axes",
    "deployer",
    "dashboards",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a signed-in user unless a view opts out explicitly.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "deployer.lib.logcontext.DeployContextMiddleware",
    "dashboards.api.auth.token_notice_middleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "dashboards.urls"
WSGI_APPLICATION = "deployer.wsgi.application"
ASGI_APPLICATION = "deployer.asgi.application"

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
                "dashboards.context.gantry",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'gantry.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL: pages read the log while a worker writes; IMMEDIATE: writers queue, not "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Sign-in brute force (django-axes): every sign-in (pages and the admin) goes through its backend.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "deployer.environments.team_identity.PasswordSignIn",  # Gantry's passwords (off: superusers only, audited)
    "deployer.environments.team_identity.TeamIdentity",  # OpenID Connect, when GANTRY_OIDC_ISSUER is set
    "deployer.environments.github_sign_in.GitHubSignIn",  # GitHub OAuth, when GANTRY_GITHUB_SIGN_IN_ORG is set
]
# Sign in with the team's identity (OpenID Connect, endpoints discovered): deployer/environments/team_identity.py.
OIDC_ISSUER = env.str("GANTRY_OIDC_ISSUER", default="").rstrip("/")
OIDC_RP_CLIENT_ID = env.str("GANTRY_OIDC_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET = env.str("GANTRY_OIDC_CLIENT_SECRET", default="")
OIDC_RP_SIGN_ALGO = env.str("GANTRY_OIDC_SIGN_ALGO", default="RS256")
OIDC_RP_SCOPES = env.str("GANTRY_OIDC_SCOPES", default="openid email profile groups")
OIDC_GROUPS_CLAIM = env.str("GANTRY_OIDC_GROUPS_CLAIM", default="groups")
OIDC_PROVIDER_NAME = env.str("GANTRY_OIDC_NAME", default="single sign-on")
OIDC_ALLOWED_DOMAINS = [domain.lower() for domain in env.list("GANTRY_OIDC_ALLOWED_DOMAINS", default=[])]
OIDC_REQUIRED_GROUP = env.str("GANTRY_OIDC_REQUIRED_GROUP", default="")  # (one of the two says who may come in)
# Sign in with GitHub (an OAuth app): members of the organization; its teams are their groups.
GITHUB_SIGN_IN_ORG = env.str("GANTRY_GITHUB_SIGN_IN_ORG", default="")
GITHUB_SIGN_IN_CLIENT_ID = env.str("GANTRY_GITHUB_CLIENT_ID", default="")
GITHUB_SIGN_IN_CLIENT_SECRET = env.str("GANTRY_GITHUB_CLIENT_SECRET", default="")
# An API token of someone who signs in through a provider stops until they sign in again after this long.
TOKEN_GROUPS_MINUTES = env.int("GANTRY_TOKEN_GROUPS_MINUTES", default=24 * 60)
LOCAL_PASSWORDS = env.bool("GANTRY_LOCAL_PASSWORDS", default=True)  # off: break-glass superusers only
SESSION_COOKIE_AGE = env.int("GANTRY_SESSION_HOURS", default=24) * 3600  # group changes count by then at the latest
# After this many failed sign-ins, a user name is locked out, and so is an address (each on its own).
AXES_FAILURE_LIMIT = env.int("GANTRY_SIGNIN_FAILURES", default=5)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_COOLOFF_TIME = timedelta(minutes=env.int("GANTRY_SIGNIN_LOCKOUT_MINUTES", default=15))
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # its "AXES: BEGIN" line at every start (each manage.py command) says nothing
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "deployer.lib.client_ip.client_ip"
# Behind a reverse proxy: how many proxies append to X-Forwarded-For (0: REMOTE_ADDR is the client).
PROXY_COUNT = env.int("GANTRY_PROXY_COUNT", default=0)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "services"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True

# Served over HTTPS (GANTRY_BASE_URL says so): cookies only over TLS, and browsers told to stay on it.
SERVED_OVER_HTTPS = GANTRY_BASE_URL.startswith("https://")
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=SERVED_OVER_HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if SERVED_OVER_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Off by default: behind a TLS proxy that does not say so (SECURE_PROXY_SSL_HEADER) it would redirect for ever.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # probes talk to the process directly
# "HTTP_X_FORWARDED_PROTO=https": the header your TLS proxy sets (and strips from clients), and its value.
_proxy_ssl_header = env.str("SECURE_PROXY_SSL_HEADER", default="")
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header.split("=", 1)) if "=" in _proxy_ssl_header else None

# --- Redis, Celery -----------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")

# A deploy may run this long before Celery kills it; Redis's visibility timeout is larger (no redelivery).
DEPLOY_TIME_LIMIT = env.int("GANTRY_DEPLOY_TIME_LIMIT", default=3600)

if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": DEPLOY_TIME_LIMIT * 2,
        "global_keyprefix": env.str("GANTRY_BROKER_PREFIX", default=""),
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # kombu's filesystem transport: a real broker in a folder, no server needed.
    _broker_dir = VAR_DIR / "broker"
    _broker_dir.mkdir(exist_ok=True)
    CELERY_BROKER_URL = "gantryfs://localhost/"  # written atomically: deployer/broker.py
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "control_folder": str(_broker_dir / "control"),
        "polling_interval": 0.1,
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "sync"
# Deploys get their own queue (and worker); everything else is short and goes to sync.
CELERY_TASK_ROUTES = {
    "gantry.run_deploy": {"queue": "deploys"},
    "gantry.check_migrations": {"queue": "deploys"},  # a build on the builder, as long as a deploy's
    "gantry.hosts_left": {"queue": "deploys"},  # the load balancer, reached from where deploys run
    "gantry.send_slack": {"queue": "notify"},
    "gantry.send_grafana": {"queue": "notify"},
    "gantry.send_hook": {"queue": "notify"},
    "gantry.chatops": {"queue": "notify"},
    "gantry.slack_respond": {"queue": "notify"},
    "gantry.link_slack": {"queue": "notify"},
    "gantry.*": {"queue": "sync"},
}
CELERY_TASK_SERIALIZER, CELERY_ACCEPT_CONTENT = "json", ["json"]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# How often every service's branches are synced (and builds: GANTRY_BUILD_SYNC_SECONDS, with Jenkins).
BRANCH_SYNC_SECONDS = env.int("GANTRY_BRANCH_SYNC_SECONDS", default=60)
# The catalog in git (empty: load_catalog by hand), followed by the workers: deployer/ops/catalog_follow.py.
CATALOG_REPO = env.str("GANTRY_CATALOG_REPO", default="")
CATALOG_BRANCH = env.str("GANTRY_CATALOG_BRANCH", default="main")
CATALOG_PATH = env.str("GANTRY_CATALOG_PATH", default="catalog.yml")
CATALOG_SYNC_SECONDS = env.int("GANTRY_CATALOG_SYNC_SECONDS", default=60)
# GitHub requests a minute of the periodic resync, at most (GitHub allows 900 points): sources/pacing.py.
GITHUB_SYNC_PER_MINUTE = env.int("GANTRY_GITHUB_SYNC_REQUESTS_PER_MINUTE", default=600)
# A second Refresh of one service within this many seconds is answered "already refreshing", not queued.
REFRESH_THROTTLE_SECONDS = env.int("GANTRY_REFRESH_THROTTLE_SECONDS", default=15)
# The services matrix is cached this long at most (0: never); writers invalidate it sooner.
MATRIX_CACHE_SECONDS = env.int("GANTRY_MATRIX_CACHE_SECONDS", default=5)
# The services list shows this many services a page (the signed-in person's teams first); ?show=all shows all.
SERVICES_PAGE_SIZE = env.int("GANTRY_SERVICES_PAGE_SIZE", default=100)
# A service page shows this many branches (default, running ones, then the newest); ?branches=all shows all.
SERVICE_BRANCHES_SHOWN = env.int("GANTRY_SERVICE_BRANCHES_SHOWN", default=50)

# --- Deploys, SSH ------------------------------------------------------------
# Gantry's SSH key: its text in GANTRY_SSH_PRIVATE_KEY, else the file GANTRY_SSH_KEY (never in the database).
GANTRY_SSH_PRIVATE_KEY = env.str("GANTRY_SSH_PRIVATE_KEY", default="")
GANTRY_SSH_KEY = Path(env.str("GANTRY_SSH_KEY", default=str(VAR_DIR / "ssh" / "id_ed25519")))
# Host keys are trusted in the database; a known_hosts file here from before is imported once by a migration.
GANTRY_KNOWN_HOSTS = Path(env.str("GANTRY_KNOWN_HOSTS", default=str(VAR_DIR / "ssh" / "known_hosts")))
SSH_CONNECT_TIMEOUT = env.int("GANTRY_SSH_CONNECT_TIMEOUT", default=10)
SSH_CONFIG_FILE = env.str("GANTRY_SSH_CONFIG", default="")  # an OpenSSH client config for hosts (ssh_config.py)
# SSH connections a worker process holds open at once (a bigger rollout closes each host's between steps).
SSH_MAX_CONNECTIONS = env.int("GANTRY_SSH_MAX_CONNECTIONS", default=100)
# A service's artifacts kept on its builder (build: builder), newest first; older ones are removed after a deploy.
BUILDER_ARTIFACTS_KEPT = env.int("GANTRY_BUILDER_ARTIFACTS_KEPT", default=10)
# The largest release artifact a worker copies from a builder or downloads from Jenkins.
ARTIFACT_MAX_BYTES = env.int("GANTRY_ARTIFACT_MAX_MB", default=4096) * 2**20
# The demo's loopback hosts, and the first ports it tries for sshd and the app (taken ones are skipped).
DEMO_ADDRESSES = env.list("GANTRY_DEMO_ADDRESSES", default=["127.0.0.2", "127.0.0.3"])
DEMO_SSH_PORT = env.int("GANTRY_DEMO_SSH_PORT", default=2222)
DEMO_APP_PORT = env.int("GANTRY_DEMO_APP_PORT", default=8081)
# Upper bound for any one remote command (upload, build, restart).
SSH_COMMAND_TIMEOUT = env.int("GANTRY_SSH_COMMAND_TIMEOUT", default=600)
GIT_TIMEOUT = env.int("GANTRY_GIT_TIMEOUT", default=120)
REPO_MIRROR_DIR = VAR_DIR / "repos"

# Prometheus servers a canary analysis may ask, by name (name=URL,...; credentials in the URL): deploys/analysis.py.
PROMETHEUS_SERVERS = env.dict("GANTRY_PROMETHEUS", default={})
PROMETHEUS_TIMEOUT = env.int("GANTRY_PROMETHEUS_TIMEOUT", default=5)
# Grafana: each deploy becomes annotations there, sent through the outbox (notify/grafana_outbox.py). Empty: off.
GRAFANA_URL = env.str("GANTRY_GRAFANA_URL", default="")
GRAFANA_TOKEN = env.str("GANTRY_GRAFANA_TOKEN", default="")  # a service account's token (Editor)
# --- Slack ---------------------------------------------------------------------
SLACK_BOT_TOKEN = env.str("SLACK_BOT_TOKEN", default="")
SLACK_API_URL = env.str("SLACK_API_URL", default="https://slack.com/api/")
SLACK_TIMEOUT = env.int("SLACK_TIMEOUT", default=10)
SLACK_DEFAULT_CHANNEL = env.str("SLACK_DEFAULT_CHANNEL", default="")
# Updates to one message go out at most this often (Slack allows about one per second per channel).
SLACK_UPDATE_INTERVAL = env.float("SLACK_UPDATE_INTERVAL", default=1.0)
# ChatOps (slash command, buttons): off until the app's signing secret is set.
SLACK_SIGNING_SECRET = env.str("SLACK_SIGNING_SECRET", default="")
# A Slack user's Gantry account (matched by e-mail) is looked up again after this long.
SLACK_IDENTITY_SECONDS = env.int("SLACK_IDENTITY_SECONDS", default=3600)
# Where answers to slash commands and buttons may go: Slack's hooks only (nowhere else, signed or not).
SLACK_RESPONSE_URL_PREFIX = env.str("SLACK_RESPONSE_URL_PREFIX", default="https://hooks.slack.com/")

# "viewer": people need a grant to deploy; "deployer": anyone signed in may deploy outside production.
DEFAULT_ROLE = env.str("GANTRY_DEFAULT_ROLE", default="viewer")
# Hosts staged or switched at the same time, at most (per deploy).
ROLLOUT_PARALLELISM = env.int("GANTRY_ROLLOUT_PARALLELISM", default=10)
# A running deploy's heartbeat (seconds); older than DEPLOY_HEARTBEAT_TIMEOUT, the reaper calls it interrupted.
DEPLOY_HEARTBEAT_SECONDS = env.int("GANTRY_DEPLOY_HEARTBEAT_SECONDS", default=10)
DEPLOY_HEARTBEAT_TIMEOUT = env.int("GANTRY_DEPLOY_HEARTBEAT_TIMEOUT", default=60)
# A paused deploy (on_failure: pause) waits this long for a decision, then aborts and rolls back.
PAUSE_TIMEOUT_SECONDS = env.int("GANTRY_PAUSE_TIMEOUT_SECONDS", default=1800)
# A queued deploy whose job no worker took is sent again after this long, and given up after the second.
QUEUED_RESEND_SECONDS = env.int("GANTRY_QUEUED_RESEND_SECONDS", default=60)
QUEUED_GIVE_UP_SECONDS = env.int("GANTRY_QUEUED_GIVE_UP_SECONDS", default=1800)
# A deploy's log keeps at most this many lines; the rest is counted, not stored.
DEPLOY_LOG_MAX_LINES = env.int("GANTRY_DEPLOY_LOG_MAX_LINES", default=5000)

# --- GitHub (on when GITHUB_TOKEN is set) ----------------------------------------
GITHUB_TOKEN = env.str("GITHUB_TOKEN", default="")
# GitHub Enterprise: https://ghe.example.com/api/v3 and https://ghe.example.com
GITHUB_API_URL = env.str("GITHUB_API_URL", default="https://api.github.com").rstrip("/")
GITHUB_WEB_URL = env.str("GITHUB_WEB_URL", default="https://github.com").rstrip("/")
GITHUB_WEBHOOK_SECRET = env.str("GITHUB_WEBHOOK_SECRET", default="")
GITHUB_TIMEOUT = env.int("GITHUB_TIMEOUT", default=10)
# Syncs stop spending when fewer than this many rate-limit units are left.
GITHUB_RATE_LIMIT_RESERVE = env.int("GITHUB_RATE_LIMIT_RESERVE", default=100)
GITHUB_DEPLOYMENTS = env.bool("GITHUB_DEPLOYMENTS", default=True)

# --- Jenkins (on when JENKINS_URL is set) -------------------------------------------
JENKINS_URL = env.str("JENKINS_URL", default="").rstrip("/")
JENKINS_USER = env.str("JENKINS_USER", default="")
JENKINS_TOKEN = env.str("JENKINS_TOKEN", default="")
JENKINS_TIMEOUT = env.int("JENKINS_TIMEOUT", default=10)
JENKINS_WEBHOOK_TOKEN = env.str("JENKINS_WEBHOOK_TOKEN", default="")
BUILD_SYNC_SECONDS = env.int("GANTRY_BUILD_SYNC_SECONDS", default=120)

# After this many failures in a row an integration is paused (calls skipped) for a while.
INTEGRATION_FAILURES_BEFORE_PAUSE = env.int("GANTRY_INTEGRATION_FAILURES_BEFORE_PAUSE", default=3)
INTEGRATION_PAUSE_SECONDS = env.int("GANTRY_INTEGRATION_PAUSE_SECONDS", default=60)

# Every line carries the deploy it is about (deploy=42, or deploy=- ); LOG_FORMAT=json for log shippers.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "deploy_id": {"()": "deployer.lib.logcontext.DeployIdFilter"},
        "secrets": {"()": "deployer.lib.secrets.ScrubFilter"},  # a deploy's secrets, masked
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s deploy=%(deploy_id)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(deploy_id)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["deploy_id", "secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"paramiko": {"level": "WARNING"}},
}
# The REST API's settings (DRF, knox, drf-spectacular): deployer/api_settings.py.
from deployer.api_settings import KNOX_TOKEN_MODEL, REST_FRAMEWORK, REST_KNOX, SPECTACULAR_SETTINGS  # noqa: E402, F401

# Messages live in the session, not in a cookie: the admin shows a new API token once, through one.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
# Tokens made without a scope (api_token, the admin) work until this day, and every answer to one says so.
try:
    LEGACY_TOKENS_UNTIL = datetime.date.fromisoformat(env.str("GANTRY_LEGACY_TOKENS_UNTIL", default="2027-06-30"))
except ValueError as _exc:
    raise ImproperlyConfigured(f"GANTRY_LEGACY_TOKENS_UNTIL is a day as YYYY-MM-DD ({_exc})") from None

# /metrics wants this as a bearer token (or a signed-in admin); empty: only admins.
METRICS_TOKEN = env.str("GANTRY_METRICS_TOKEN", default="")

# Every periodic task, in one place.
CELERY_BEAT_SCHEDULE = {
    "sync-all-branches": {"task": "gantry.sync_all_branches", "schedule": BRANCH_SYNC_SECONDS},
    "sync-all-builds": {"task": "gantry.sync_all_builds", "schedule": BUILD_SYNC_SECONDS},
    "sweep-webhooks": {"task": "gantry.sweep_webhooks", "schedule": 60},
    # Also sends deploys that waited for the queue: soon after it is back, they start.
    "reap-deploys": {"task": "gantry.reap_deploys", "schedule": 10},
    "read-budgets": {"task": "gantry.read_budgets", "schedule": 60},  # every service's SLO (none: nothing)
    "advance-leases": {"task": "gantry.advance_leases", "schedule": 15},
    "monitor-api-tests": {"task": "gantry.monitor_api_tests", "schedule": 60},
    "sync-catalog": {"task": "gantry.sync_catalog", "schedule": CATALOG_SYNC_SECONDS},  # (nothing when not in git)
}
