import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from banking.services.customers import api_key_issue, organization_create


class Command(BaseCommand):
    help = "Create an organization with an API key; prints one JSON line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--provider", action="store_true", help="also a GPU provider")
        parser.add_argument("--provider-only", action="store_true", help="a provider, not a buyer")

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            org = organization_create(
                name=options["name"],
                is_buyer=not options["provider_only"],
                is_provider=options["provider"] or options["provider_only"],
            )
            issued = api_key_issue(organization_id=org.pk)
        self.stdout.write(json.dumps({"organization_id": org.pk, "api_key": issued.secret}))
