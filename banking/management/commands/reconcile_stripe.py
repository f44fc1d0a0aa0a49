"""manage.py reconcile_stripe [--since DATE]: Stripe against the ledger; exit 1 on any
mismatch."""

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from banking.gateway import GatewayError
from banking.services.reconciliation import stripe_reconcile


def _parse_since(raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise CommandError(f"--since: {raw!r} is not a date (YYYY-MM-DD[THH:MM:SS]).") from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Compare succeeded payments, refunds and transfers in Stripe with the ledger's "
        "card-clearing and payout-clearing transfers; report each mismatch."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", help="only objects created at or after this date/time")

    def handle(self, *args: Any, **options: Any) -> None:
        since = _parse_since(options["since"]) if options.get("since") else None
        try:
            report = stripe_reconcile(since=since)
        except GatewayError as exc:
            raise CommandError(f"Stripe could not be read: {exc.message}") from exc
        for mismatch in report.mismatches:
            self.stdout.write(f"MISMATCH {mismatch}")
        summary = (
            f"{report.payments} payments, {report.refunds} refunds, "
            f"{report.transfers} transfers checked"
        )
        if report.mismatches:
            raise CommandError(f"{len(report.mismatches)} mismatch(es); {summary}.")
        self.stdout.write(f"OK: {summary}; no mismatch.")
