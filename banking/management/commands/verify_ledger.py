from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from banking.services.ledger_checks import ledger_check_run


class Command(BaseCommand):
    help = ("Check the ledger's invariants over what was posted since the last clean "
            "checkpoint (--full: the whole ledger); record a new checkpoint when clean, exit "
            "non-zero with a report of every violation otherwise.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--full", action="store_true",
                            help="check the whole ledger, not only what is new since the "
                                 "last checkpoint, and sum the accounts anew")

    def handle(self, *args: Any, **options: Any) -> None:
        run = ledger_check_run(full=options["full"])
        if run.violations:
            for v in run.violations:
                self.stderr.write(f"VIOLATION [{v.invariant}] {v.detail}")
            raise CommandError(f"ledger invariants broken: {len(run.violations)} violation(s)")
        since = ("the whole ledger" if run.since is None
                 else f"since transfer {run.since.transfer_bound}")
        up_to = f"; checkpoint at transfer {run.recorded.transfer_bound}" if run.recorded else ""
        self.stdout.write(f"ledger ok: every invariant holds ({since}{up_to})")
