import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from banking.models import CreditLine, Organization
from banking.services.lending import credit_line_set
from core.errors import DomainError


class Command(BaseCommand):
    help = (
        "Set an organization's credit line (by id or name): the most principal it may owe, "
        "its rate and its longest term. A new line needs --apr-bps and --max-term-months; "
        "a change keeps what is not given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("organization", help="organization id or exact name")
        parser.add_argument("limit", type=int, help="credit limit in tokens")
        parser.add_argument("--apr-bps", type=int, help="yearly rate, basis points")
        parser.add_argument("--max-term-months", type=int, help="longest loan term, 1 to 120")

    def handle(self, *args: Any, **options: Any) -> None:
        ref = options["organization"]
        org = Organization.objects.filter(pk=int(ref)).first() if ref.isdigit() else None
        org = org or Organization.objects.filter(name=ref).first()
        if org is None:
            raise CommandError(f"no organization {ref!r}")
        current = CreditLine.objects.filter(organization=org).first()
        apr_bps = options["apr_bps"] if options["apr_bps"] is not None else (
            current.apr_bps if current else None)
        term = options["max_term_months"] if options["max_term_months"] is not None else (
            current.max_term_months if current else None)
        if apr_bps is None or term is None:
            raise CommandError("a new credit line needs --apr-bps and --max-term-months")
        try:
            line = credit_line_set(organization_id=org.pk, limit=options["limit"],
                                   apr_bps=apr_bps, max_term_months=term)
        except DomainError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self.stdout.write(json.dumps({
            "organization_id": org.pk, "limit": line.limit, "apr_bps": line.apr_bps,
            "max_term_months": line.max_term_months,
        }))
