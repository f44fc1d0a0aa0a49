from django.apps import AppConfig


class BankingConfig(AppConfig):
    name = "banking"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from banking import audit, audit_admin  # noqa: F401  the admin log's receiver, admin
        from banking.api import schema  # noqa: F401  registers the OpenAPI auth scheme
