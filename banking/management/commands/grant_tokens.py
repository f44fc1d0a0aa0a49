import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from banking.models import Organization
from banking.services.ledger import grant_post
from core.errors import DomainError


class Command(BaseCommand):
    help = "Post a promotional grant of tokens to an organization (by id or name)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("organization", help="organization id or exact name")
        parser.add_argument("amount", type=int)
        parser.add_argument("--reason", required=True)
        parser.add_argument("--key", help="idempotency key: the same key grants once")

    def handle(self, *args: Any, **options: Any) -> None:
        ref = options["organization"]
        org = Organization.objects.filter(pk=int(ref)).first() if ref.isdigit() else None
        org = org or Organization.objects.filter(name=ref).first()
        if org is None:
            raise CommandError(f"no organization {ref!r}")
        try:
            transfer = grant_post(
                organization_id=org.pk,
                amount=options["amount"],
                reason=options["reason"],
                idempotency_key=options["key"],
            )
        except DomainError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self.stdout.write(
            json.dumps({"transfer_id": transfer.pk, "organization_id": org.pk,
                        "amount": options["amount"]})
        )
