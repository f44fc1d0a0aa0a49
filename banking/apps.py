from django.apps import AppConfig


class BankingConfig(AppConfig):
    name = "banking"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from banking.api import schema  # noqa: F401  registers the OpenAPI auth scheme
