"""What production refuses to start with. With DJANGO_DEBUG off every serving process
(config.wsgi, config.asgi, Celery's worker and beat) checks the settings first and stops
naming each insecure one; `manage.py check --deploy` reports the same as errors."""

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

# Keys that are public: the old default of config/settings.py, .env.example's, Django's
# startproject marker. Anyone holding one can forge sessions and password-reset links.
KNOWN_DEVELOPMENT_SECRET_KEYS = frozenset(
    {"", "dev-only-insecure-key-change-me", "change-me-in-production"}
)


def insecure_settings(config: Any = settings) -> list[str]:
    """One sentence per insecure setting, each starting with the setting's name."""
    if config.DEBUG:
        return []
    problems = []
    secret_key = str(config.SECRET_KEY or "")
    if secret_key in KNOWN_DEVELOPMENT_SECRET_KEYS or secret_key.startswith("django-insecure"):
        problems.append(
            "DJANGO_SECRET_KEY is missing or a known development value: set a long random one."
        )
    stripe_on = bool(config.STRIPE_SECRET_KEY)
    if not stripe_on and config.PAYMENTS_GATEWAY != "fake":
        problems.append(
            "PAYMENTS_GATEWAY: with no STRIPE_SECRET_KEY the fake gateway, which accepts any "
            "test card for free, would take payments; set STRIPE_SECRET_KEY, or "
            "PAYMENTS_GATEWAY=fake to ask for the fake by name."
        )
    if stripe_on and not config.STRIPE_WEBHOOK_SECRET:
        problems.append(
            "STRIPE_WEBHOOK_SECRET is empty while Stripe is on: webhooks could not be verified."
        )
    if "*" in config.ALLOWED_HOSTS:
        problems.append("DJANGO_ALLOWED_HOSTS is '*': name the hosts this site answers for.")
    return problems


def refuse_insecure_settings() -> None:
    problems = insecure_settings()
    if problems:
        raise ImproperlyConfigured(
            "Refusing to start with DJANGO_DEBUG off: " + " ".join(problems)
        )


@checks.register(checks.Tags.security, deploy=True)
def insecure_settings_check(**_: Any) -> list[checks.CheckMessage]:
    return [checks.Error(problem, id="suanli.E001") for problem in insecure_settings()]
