from typing import Any

from django.core.management.base import BaseCommand, CommandError

from banking.invariants import ledger_verify


class Command(BaseCommand):
    help = "Check the ledger's invariants; exit non-zero with a report of every violation."

    def handle(self, *args: Any, **options: Any) -> None:
        violations = ledger_verify()
        if violations:
            for v in violations:
                self.stderr.write(f"VIOLATION [{v.invariant}] {v.detail}")
            raise CommandError(f"ledger invariants broken: {len(violations)} violation(s)")
        self.stdout.write("ledger ok: every invariant holds")
