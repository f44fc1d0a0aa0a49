"""Every setting comes from the environment; `.env.example` documents each one.

With nothing set, the project runs embedded: SQLite, an in-process cache, a Celery broker
on SQLite, and the fake payment gateway. The tests and production set DATABASE_URL and
REDIS_URL.
"""

from pathlib import Path
from typing import cast

import environ
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="dev-only-insecure-key-change-me")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "core",
    "core.apps.SuanliAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "pgtrigger",
    "banking",
    "scheduler",
    "marketplace",
]

MIDDLEWARE = [
    "core.observability.RequestLogMiddleware",
    # Before anything reads a body (CSRF reads a form's): core.request_bounds.
    "core.request_bounds.RequestBodyLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "banking.audit.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default runs web, worker and beat against one file: wait for the
    # writer instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    DATABASES["default"]["OPTIONS"]["init_command"] = "PRAGMA journal_mode=WAL;"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="suanli"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# The agents' ASGI doors talk to Redis on one bounded pool per worker's event loop
# (core.loop_redis): past its size a call waits its turn, at most the timeout.
REDIS_ASYNC_POOL_SIZE = env.int("REDIS_ASYNC_POOL_SIZE", default=32)
REDIS_ASYNC_POOL_TIMEOUT_S = env.float("REDIS_ASYNC_POOL_TIMEOUT_S", default=5.0)
# The connections of that pool that carry the doors' batched commands at once.
REDIS_ASYNC_LANES = env.int("REDIS_ASYNC_LANES", default=4)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Served by WhiteNoise straight from the apps' static folders in development and tests;
# `collectstatic` fills STATIC_ROOT for production.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES: dict[str, dict[str, object]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend"
)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Suanli <no-reply@suanli.local>")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "banking.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["banking.api.permissions.HasOrganization"],
    "DEFAULT_THROTTLE_CLASSES": ["banking.api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "api_key": env.str("API_RATE_LIMIT", default="6000/min"),
        "node": env.str("AGENT_RATE_LIMIT", default="600/min"),
    },
    "DEFAULT_PAGINATION_CLASS": "banking.api.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "banking.api.schema.ScopedAutoSchema",
    "EXCEPTION_HANDLER": "core.api_errors.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.request_bounds.BoundedJSONParser"],
    "UNAUTHENTICATED_USER": None,
    # `?format=csv` on statements is handled by the view, not by content negotiation.
    "URL_FORMAT_OVERRIDE": None,
}
# Failures Django answers before an API view runs, in the API's error shape too.
MIDDLEWARE.insert(MIDDLEWARE.index("core.observability.RequestLogMiddleware") + 1,
                  "core.api_errors.JsonErrorsUnderApi")

# Request bodies are capped before parsing (core.request_bounds): the API's, and the
# agents' calls under AGENT_API_PATH_PREFIX, which send small reports. Views that bound
# their own bodies (log chunks, signed uploads) are named by URL name.
API_REQUEST_MAX_BYTES = env.int("API_REQUEST_MAX_BYTES", default=1024 * 1024)
AGENT_REQUEST_MAX_BYTES = env.int("AGENT_REQUEST_MAX_BYTES", default=64 * 1024)
AGENT_API_PATH_PREFIX = "/api/v1/agent/"
REQUEST_BODY_SELF_BOUNDED_VIEWS = frozenset({"agent-logs", "object-upload"})
# How deep a JSON body may nest; a job's spec, the deepest field, is bounded on its own.
API_JSON_MAX_DEPTH = env.int("API_JSON_MAX_DEPTH", default=32)

SPECTACULAR_SETTINGS = {
    "TITLE": "Suanli API",
    "DESCRIPTION": "Compute bank and GPU supermarket. Every amount is in whole tokens.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI served from our own static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "ApiKey": {"type": "apiKey", "in": "header", "name": "Authorization"},
            "NodeToken": {"type": "apiKey", "in": "header", "name": "Authorization"},
        }
    },
}

# Celery: the broker defaults to Redis when REDIS_URL is set, else a SQLite file so the
# embedded default needs no server.
CELERY_BROKER_URL = env.str(
    "CELERY_BROKER_URL",
    default=REDIS_URL or f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}",
)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 100
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ROUTES: dict[str, dict[str, str]] = {}
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {}

# Scheduler
SCHEDULER_AUTO_APPROVE_NODES = env.bool("SCHEDULER_AUTO_APPROVE_NODES", default=False)
SCHEDULER_NODE_TIMEOUT_S = env.int("SCHEDULER_NODE_TIMEOUT_S", default=30)
SCHEDULER_HEARTBEAT_INTERVAL_S = env.int("SCHEDULER_HEARTBEAT_INTERVAL_S", default=10)
SCHEDULER_MAX_ATTEMPTS = env.int("SCHEDULER_MAX_ATTEMPTS", default=3)
SCHEDULER_PLATFORM_FEE_BPS = env.int("SCHEDULER_PLATFORM_FEE_BPS", default=1000)
SCHEDULER_QUEUE_TTL_S = env.int("SCHEDULER_QUEUE_TTL_S", default=7 * 24 * 3600)
SCHEDULER_PLACEMENT_BATCH = env.int("SCHEDULER_PLACEMENT_BATCH", default=20000)
# Reliability: evidence of the last WINDOW days, halving in weight every HALF_LIFE days.
SCHEDULER_RELIABILITY_WINDOW_DAYS = env.int("SCHEDULER_RELIABILITY_WINDOW_DAYS", default=30)
SCHEDULER_RELIABILITY_HALF_LIFE_DAYS = env.float("SCHEDULER_RELIABILITY_HALF_LIFE_DAYS",
                                                 default=7.0)
# Bounded queues: jobs one organization may have queued, and one block.
SCHEDULER_ORG_QUEUED_MAX = env.int("SCHEDULER_ORG_QUEUED_MAX", default=100_000)
SCHEDULER_BLOCK_QUEUE_MAX = env.int("SCHEDULER_BLOCK_QUEUE_MAX", default=1000)
SCHEDULER_SETTLEMENT_INTERVAL_S = env.float("SCHEDULER_SETTLEMENT_INTERVAL_S", default=5.0)
# Agents' usage reports are checked against the clock (scheduler.services.plausibility):
# a run's cumulative GPU-seconds at most gpu_count x (seconds since its node could first
# have started it + SLACK), and at most its budget + gpu_count x SLACK (what a run may
# overrun while its node stops it; never billed); AI tokens at most AI_TOKENS_PER_GPU_S per
# GPU-second so allowed. The default rate is the simulate spec's own maximum per second
# (suanli_agent.workload_spec), so a buyer's simulated job cannot get its node flagged.
# A node refused IMPLAUSIBLE_DISABLE_AFTER times within the reliability window is disabled
# and flagged for an operator. SLACK is well above the grace an agent gives a container to
# stop at its maximum duration (suanli_agent.config kill_grace_s) and the second it
# rounds up.
SCHEDULER_USAGE_SLACK_S = env.int("SCHEDULER_USAGE_SLACK_S", default=30)
SCHEDULER_AI_TOKENS_PER_GPU_S = env.int("SCHEDULER_AI_TOKENS_PER_GPU_S", default=10**9)
SCHEDULER_IMPLAUSIBLE_DISABLE_AFTER = env.int("SCHEDULER_IMPLAUSIBLE_DISABLE_AFTER", default=3)
# Agents' heartbeats are acknowledged from Redis and written to PostgreSQL in batches
# every AGENT_HEARTBEAT_FLUSH_S (scheduler.services.heartbeat_buffer); off without Redis.
AGENT_HEARTBEAT_WRITE_BEHIND = env.bool("AGENT_HEARTBEAT_WRITE_BEHIND", default=bool(REDIS_URL))
AGENT_HEARTBEAT_FLUSH_S = env.float("AGENT_HEARTBEAT_FLUSH_S", default=1.0)
# The longest an agent's lease wait (`POST agent/lease/?wait=S`, scheduler.agent_api.lease_push)
# is held open before it is answered "no change".
AGENT_LEASE_WAIT_MAX_S = env.int("AGENT_LEASE_WAIT_MAX_S", default=60)
# Threads (each with a database connection) per agents' server worker for the work its
# doors cannot await: token lookups, lease reads, log chunks.
AGENT_DATABASE_THREADS = env.int("AGENT_DATABASE_THREADS", default=16)
CELERY_TASK_ROUTES.update(
    {
        "scheduler.placement_run": {"queue": "placement"},
        "scheduler.usage_settle": {"queue": "settlement"},
        "scheduler.leases_expire": {"queue": "default"},
        "scheduler.reliability_refresh": {"queue": "default"},
        "scheduler.heartbeats_flush": {"queue": "default"},
    }
)
CELERY_BEAT_SCHEDULE.update(
    {
        "placement": {"task": "scheduler.placement_run", "schedule": 5.0},
        "settlement": {
            "task": "scheduler.usage_settle",
            "schedule": SCHEDULER_SETTLEMENT_INTERVAL_S,
        },
        "leases": {"task": "scheduler.leases_expire", "schedule": 5.0},
        "reliability": {"task": "scheduler.reliability_refresh", "schedule": 3600.0},
        "holds-expire": {"task": "banking.holds_expire", "schedule": 60.0},
    }
)
if AGENT_HEARTBEAT_WRITE_BEHIND:
    CELERY_BEAT_SCHEDULE["heartbeats"] = {
        "task": "scheduler.heartbeats_flush", "schedule": AGENT_HEARTBEAT_FLUSH_S,
    }

# Bank products
# Availability yield: a deposit of g GPUs for h whole hours at rate r earns at most
# total = g * r * h tokens over its n = h * 3600 / BANK_YIELD_INTERVAL_S intervals;
# interval i earns floor(total*(i+1)/n) - floor(total*i/n), so the yields are whole tokens
# summing to total exactly and an online half earns floor(total/2) (exactly half when even).
BANK_YIELD_INTERVAL_S = env.int("BANK_YIELD_INTERVAL_S", default=900)
# An interval counts as online when this share of its minutes saw a heartbeat.
BANK_COVERAGE_THRESHOLD = env.float("BANK_COVERAGE_THRESHOLD", default=0.9)
# A deposit that misses more than this share of its intervals is defaulted.
BANK_DEFAULT_MISSED_SHARE = env.float("BANK_DEFAULT_MISSED_SHARE", default=0.25)
BANK_ADVANCE_SHARE_BPS = env.int("BANK_ADVANCE_SHARE_BPS", default=5000)
# Advances lend only against the yield of the next days, and only on deposits whose node
# has had heartbeats every day of the history window (and an approved provider).
BANK_ADVANCE_HORIZON_DAYS = env.int("BANK_ADVANCE_HORIZON_DAYS", default=14)
BANK_ADVANCE_HISTORY_DAYS = env.int("BANK_ADVANCE_HISTORY_DAYS", default=7)
# A deposit's window starts within DEPOSIT_MAX_AHEAD_DAYS and lasts at most DEPOSIT_MAX_DAYS.
DEPOSIT_MAX_AHEAD_DAYS = env.int("DEPOSIT_MAX_AHEAD_DAYS", default=30)
DEPOSIT_MAX_DAYS = env.int("DEPOSIT_MAX_DAYS", default=90)
# A block's window, and one asked about in blocks/availability/, starts within
# BLOCK_MAX_AHEAD_DAYS (no deposit makes inventory later than the deposits' own bounds
# allow) and lasts at most BLOCK_MAX_DAYS: each hour of it is a row and a slot answered.
BLOCK_MAX_AHEAD_DAYS = env.int("BLOCK_MAX_AHEAD_DAYS", default=120)
BLOCK_MAX_DAYS = env.int("BLOCK_MAX_DAYS", default=90)
# Block length discounts: (at least this many GPU-window hours, basis points off).
BANK_BLOCK_DISCOUNTS = [(720, 2000), (168, 1000), (24, 500)]
BANK_SELL_BACK_DISCOUNT_BPS = env.int("BANK_SELL_BACK_DISCOUNT_BPS", default=2000)
BANK_DOWN_PAYMENT_BPS = env.int("BANK_DOWN_PAYMENT_BPS", default=2000)
# The SLA credit multiple of what the buyer paid for undelivered GPU-hours until an admin
# sets one (marketplace SlaMultiple); at most 1 the buyer cannot profit from a failure
# even if the failing provider never pays its penalty.
BANK_SLA_MULTIPLE = env.int("BANK_SLA_MULTIPLE", default=1)
BANK_SLA_INTERVAL_S = env.int("BANK_SLA_INTERVAL_S", default=900)
BANK_PRICE_TARGET_UTILIZATION = env.float("BANK_PRICE_TARGET_UTILIZATION", default=0.7)
BANK_PRICE_STEP_BPS = env.int("BANK_PRICE_STEP_BPS", default=500)
CELERY_BEAT_SCHEDULE.update(
    {
        "bank-yield": {"task": "marketplace.yield_accrue", "schedule": 60.0},
        "bank-sla": {"task": "marketplace.sla_credits_post", "schedule": 60.0},
        "bank-prices": {"task": "marketplace.prices_adjust", "schedule": 300.0},
        "bank-low-balance": {"task": "marketplace.low_balance_check", "schedule": 60.0},
    }
)
CELERY_TASK_ROUTES.update(
    {
        "marketplace.yield_accrue": {"queue": "settlement"},
        "marketplace.sla_credits_post": {"queue": "settlement"},
        "marketplace.prices_adjust": {"queue": "default"},
        "marketplace.low_balance_check": {"queue": "default"},
    }
)

# Ledger
LEDGER_HOLD_DEFAULT_TTL_S = env.int("LEDGER_HOLD_DEFAULT_TTL_S", default=7 * 24 * 3600)
LEDGER_DEADLOCK_RETRIES = env.int("LEDGER_DEADLOCK_RETRIES", default=8)
API_KEY_LAST_USED_RESOLUTION_S = env.int("API_KEY_LAST_USED_RESOLUTION_S", default=60)
# Failed credentials (core.credential_guard): an unknown secret is answered from the cache
# for this long, and an address that presents this many different unknown secrets in one
# window is refused credentials until the window ends.
CREDENTIAL_NEGATIVE_CACHE_S = env.int("CREDENTIAL_NEGATIVE_CACHE_S", default=60)
CREDENTIAL_FAILURES_PER_WINDOW = env.int("CREDENTIAL_FAILURES_PER_WINDOW", default=20)
CREDENTIAL_FAILURE_WINDOW_S = env.int("CREDENTIAL_FAILURE_WINDOW_S", default=300)

# Payments
# With no STRIPE_SECRET_KEY the in-memory fake gateway is used (embedded demo, tests).
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")  # empty: Stripe itself
# Where browsers load Stripe.js (the card Element); tests point it at localstripe's copy.
STRIPE_JS_URL = env.str("STRIPE_JS_URL", default="https://js.stripe.com/v3/")
PAYOUT_CURRENCY = env.str("PAYOUT_CURRENCY", default="usd")
# What the bank pays a provider for 1M tokens, in cents (a Decimal string).
PAYOUT_CENTS_PER_MILLION = env.str("PAYOUT_CENTS_PER_MILLION", default="25")
PAYOUT_MIN_TOKENS = env.int("PAYOUT_MIN_TOKENS", default=10_000_000)
# Payouts of fewer tokens than this are approved without an operator; 0 turns it off.
PAYOUT_AUTO_APPROVE_BELOW_TOKENS = env.int("PAYOUT_AUTO_APPROVE_BELOW_TOKENS", default=0)
PAYOUT_HOLD_TTL_S = env.int("PAYOUT_HOLD_TTL_S", default=90 * 24 * 3600)
# A changed payout account is not paid out to for this long (the owners are emailed).
PAYOUT_ACCOUNT_CHANGE_HOLD_S = env.int("PAYOUT_ACCOUNT_CHANGE_HOLD_S", default=72 * 3600)
DISPUTE_HOLD_TTL_S = env.int("DISPUTE_HOLD_TTL_S", default=120 * 24 * 3600)
# A top-up still pending after this long is checked against Stripe by a periodic task.
TOPUP_SYNC_AFTER_S = env.int("TOPUP_SYNC_AFTER_S", default=600)
CELERY_BEAT_SCHEDULE["banking.payouts_sweep"] = {
    "task": "banking.payouts_sweep", "schedule": 24 * 3600.0,
}
# Auto top-up: a saved card is charged at most once in this many seconds per organization.
AUTO_TOPUP_MIN_INTERVAL_S = env.int("AUTO_TOPUP_MIN_INTERVAL_S", default=3600)
CELERY_BEAT_SCHEDULE["banking.auto_topups_check"] = {
    "task": "banking.auto_topups_check", "schedule": 60.0,
}
CELERY_BEAT_SCHEDULE["banking.topups_sync_pending"] = {
    "task": "banking.topups_sync_pending", "schedule": 300.0,
}
CELERY_BEAT_SCHEDULE["banking.stripe_events_retry"] = {
    "task": "banking.stripe_events_retry", "schedule": 300.0,
}
CELERY_BEAT_SCHEDULE["banking.payouts_resume"] = {
    "task": "banking.payouts_resume", "schedule": 300.0,
}
# The ledger check (banking.services.ledger_checks) trusts the ids it read at the start
# of a run this long after: longer than any posting's transaction lasts.
LEDGER_CHECK_SETTLE_S = env.int("LEDGER_CHECK_SETTLE_S", default=300)
CELERY_BEAT_SCHEDULE["banking.ledger_check"] = {
    "task": "banking.ledger_check", "schedule": env.float("LEDGER_CHECK_EVERY_S", default=600.0),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "core.observability.RequestIdFilter"}},
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        }
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
    },
}

# Lending
# An installment unpaid for more than this many days after its due date makes its
# organization delinquent (no new jobs, blocks or loans until it pays).
LENDING_GRACE_DAYS = env.int("LENDING_GRACE_DAYS", default=7)
# Due installments are collected once a day (UTC), after midnight.
LENDING_COLLECT_HOUR_UTC = env.int("LENDING_COLLECT_HOUR_UTC", default=0)
CELERY_BEAT_SCHEDULE["banking.installments_collect"] = {
    "task": "banking.installments_collect",
    "schedule": crontab(hour=LENDING_COLLECT_HOUR_UTC, minute=15),
}
# Loans and installments both have a `status`: name their enums in the API schema.
cast(dict[str, str], SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {})).update(
    LoanStatusEnum="banking.models.lending.LoanStatus",
    InstallmentStatusEnum="banking.models.lending.InstallmentStatus",
)

# Storefront
# Server-rendered pages at "/" (marketplace/urls.py); vendored CSS/JS only, nothing from
# the internet at run time.
cast(list[str], TEMPLATES[0]["OPTIONS"]["context_processors"]).append(  # type: ignore[index]
    "marketplace.context_processors.storefront"
)
LOGIN_URL = "store:login"
LOGIN_REDIRECT_URL = "store:wallet"
LOGOUT_REDIRECT_URL = "store:login"
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT", default=3 * 24 * 3600)

# The node agent's wheel, built from agent/ on its first download (marketplace.agent_wheel)
# and kept here, one folder per state of the agent's source.
AGENT_WHEEL_DIR = env.str("AGENT_WHEEL_DIR", default="") or str(VAR_DIR / "downloads")
# pip builds the wheel in an isolated environment, fetching setuptools from the index.
AGENT_WHEEL_BUILD_TIMEOUT_S = env.int("AGENT_WHEEL_BUILD_TIMEOUT_S", default=300)

# Job logs, outputs and webhooks (scheduler.services.logs, .outputs; banking webhooks)
# Log and output bytes live behind Django's storage API under the alias "objects": the
# filesystem in the embedded demo, S3-compatible storage (django-storages) in production.
OBJECT_STORAGE = env.str("OBJECT_STORAGE", default="filesystem")
OBJECT_STORAGE_ROOT = env.str("OBJECT_STORAGE_ROOT", default="") or str(VAR_DIR / "objects")
if OBJECT_STORAGE == "s3":
    STORAGES["objects"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("OBJECT_STORAGE_BUCKET", default="suanli"),
            "endpoint_url": env.str("OBJECT_STORAGE_ENDPOINT_URL", default="") or None,
            "access_key": env.str("OBJECT_STORAGE_ACCESS_KEY", default="") or None,
            "secret_key": env.str("OBJECT_STORAGE_SECRET_KEY", default="") or None,
            "region_name": env.str("OBJECT_STORAGE_REGION", default="us-east-1"),
            "file_overwrite": True,
            "querystring_auth": True,
            # botocore presigns with SigV2 in us-east-1, which signs no Content-Length (a
            # node could PUT another size than it declared) and which S3 refuses for
            # buckets created since 2020; SigV4 signs both the length and the expiry.
            "signature_version": "s3v4",
        },
    }
else:
    STORAGES["objects"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": OBJECT_STORAGE_ROOT},
    }
# A log chunk's body, the one agent call allowed past the agents' 64 KiB body cap.
LOG_CHUNK_MAX_BYTES = env.int("LOG_CHUNK_MAX_BYTES", default=1024 * 1024)
LOG_MAX_BYTES_PER_JOB = env.int("LOG_MAX_BYTES_PER_JOB", default=64 * 1024 * 1024)
# Chunks still accepted this long after an assignment ended (the agent's last flush).
LOG_GRACE_S = env.int("LOG_GRACE_S", default=300)
LOG_READ_MAX_BYTES = env.int("LOG_READ_MAX_BYTES", default=1024 * 1024)
LOG_FOLLOW_POLL_S = env.float("LOG_FOLLOW_POLL_S", default=0.5)
OBJECT_RETENTION_DAYS = env.int("OBJECT_RETENTION_DAYS", default=30)
OUTPUT_MAX_FILE_BYTES = env.int("OUTPUT_MAX_FILE_BYTES", default=5 * 1024**3)
OUTPUT_MAX_JOB_BYTES = env.int("OUTPUT_MAX_JOB_BYTES", default=20 * 1024**3)
OUTPUT_MAX_FILES = env.int("OUTPUT_MAX_FILES", default=1000)
# Outputs are declared before the run's final report and uploaded after it, not billed.
OUTPUT_GRACE_S = env.int("OUTPUT_GRACE_S", default=3600)
OUTPUT_UPLOAD_URL_TTL_S = env.int("OUTPUT_UPLOAD_URL_TTL_S", default=3600)
OUTPUT_DOWNLOAD_URL_TTL_S = env.int("OUTPUT_DOWNLOAD_URL_TTL_S", default=600)
# Where signed upload and download URLs of the filesystem storage point (the server
# itself); empty: the host of the request that asked for them.
OBJECT_PUBLIC_BASE_URL = env.str("OBJECT_PUBLIC_BASE_URL", default="")
CELERY_BEAT_SCHEDULE["scheduler.objects_expire"] = {
    "task": "scheduler.objects_expire", "schedule": 3600.0,
}
# Outbound webhooks: development allows http to loopback and private addresses (a
# receiver on this machine); production only https to public addresses.
WEBHOOKS_DEVELOPMENT = env.bool("WEBHOOKS_DEVELOPMENT", default=DEBUG)
WEBHOOKS_TIMEOUT_S = env.float("WEBHOOKS_TIMEOUT_S", default=10.0)
WEBHOOKS_MAX_ATTEMPTS = env.int("WEBHOOKS_MAX_ATTEMPTS", default=8)
WEBHOOKS_RETRY_BASE_S = env.float("WEBHOOKS_RETRY_BASE_S", default=10.0)
# The CA certificates a delivery trusts (a PEM file), in place of httpx's default (certifi's
# bundle, or SSL_CERT_FILE): for receivers behind a private CA, and for the tests' own CA,
# without changing what every other TLS client of the process trusts. Empty: the default.
WEBHOOKS_CA_BUNDLE = env.str("WEBHOOKS_CA_BUNDLE", default="") or None
CELERY_TASK_ROUTES["banking.webhook_deliver"] = {"queue": "default"}

# Production's guards (config/security.py refuses to start without the rest)
# With no STRIPE_SECRET_KEY payments go through the fake gateway; with DJANGO_DEBUG off
# that must be asked for by name: PAYMENTS_GATEWAY=fake.
PAYMENTS_GATEWAY = env.str("PAYMENTS_GATEWAY", default="")
# Served over TLS (production): HSTS, redirects to https and cookies sent over TLS only.
# Off for the embedded demo (DEBUG on) and the tests, which speak plain http.
HTTPS = env.bool("DJANGO_HTTPS", default=not DEBUG)
SECURE_SSL_REDIRECT = HTTPS
# Probes inside the deployment ask over plain http.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=365 * 24 * 3600 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SESSION_COOKIE_HTTPONLY = True
# Pages post the token from the form field, never from the cookie.
CSRF_COOKIE_HTTPONLY = True
# Behind a TLS proxy, the header it sets (e.g. HTTP_X_FORWARDED_PROTO); empty when nothing
# sits in front, since a client could then claim https itself.
_proxy_ssl_header = env.str("DJANGO_SECURE_PROXY_SSL_HEADER", default="")
SECURE_PROXY_SSL_HEADER = (_proxy_ssl_header, "https") if _proxy_ssl_header else None
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "marketplace.content_security.StorefrontCSPMiddleware",
)
INSTALLED_APPS.append("csp")
# This site only; Stripe.js's origin is added per response (marketplace.content_security).
# Inline styles stay allowed for the admin's and htmx's style attributes; scripts do not.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Accounts: django-allauth (sign-up, login by email or username, email verification,
# password reset and change, rate limits) and allauth.mfa (TOTP and recovery codes).
INSTALLED_APPS += ["allauth", "allauth.account", "allauth.mfa"]
MIDDLEWARE.append("allauth.account.middleware.AccountMiddleware")
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
# Email for people; the demo's users keep logging in by username.
ACCOUNT_LOGIN_METHODS = {"email", "username"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*"]
ACCOUNT_SIGNUP_FORM_CLASS = "marketplace.account_forms.OrganizationSignupForm"
ACCOUNT_ADAPTER = "marketplace.account_adapter.StorefrontAccountAdapter"
ACCOUNT_UNIQUE_EMAIL = True
# Signed in at once, but unverified accounts cannot create keys, spend, deposit or be
# paid out (`email_unverified`) until they follow the emailed link.
ACCOUNT_EMAIL_VERIFICATION = "optional"
ACCOUNT_CONFIRM_EMAIL_ON_GET = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Suanli] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if HTTPS else "http"
# The sixth wrong password for one account, or from one address, in a minute is refused
# with a 429 (marketplace.account_adapter), the right one too until the minute is over.
ACCOUNT_RATE_LIMITS = {"login_failed": "5/m/ip,5/m/key"}
# How long an invitation's emailed link opens the invitee's sign-up.
INVITATION_MAX_AGE_S = env.int("INVITATION_MAX_AGE_S", default=14 * 24 * 3600)
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Suanli"
