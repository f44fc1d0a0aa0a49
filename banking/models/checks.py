"""Where the ledger check left off: `verify_ledger` checks what was posted after its last
clean checkpoint, not the whole ledger again (`--full` does that).

Bounds are read from the id sequences at the start of a run (entries first, then
transfers: so every entry of a transfer above the transfer bound is above the entry
bound), and trusted only once every transaction that could hold an id below them has
ended (settings.LEDGER_CHECK_SETTLE_S later): only then do the accounts' sums cover every
entry up to the bound."""

from django.db import models
from django.db.models.functions import Now

from banking.models.ledger import Account


class LedgerCheckpoint(models.Model):
    """One clean run of the ledger check, kept as a log (never updated)."""

    # Trusted: LedgerCheckpointBalance sums every entry with id <= entry_bound, and every
    # transfer with id <= transfer_bound has been checked.
    entry_bound = models.BigIntegerField()
    transfer_bound = models.BigIntegerField()
    # When those bounds were read: a posting in flight then may still have added entries
    # above the entry bound to a transfer below the transfer bound.
    bounds_read_at = models.DateTimeField()
    # The sum of every entry up to entry_bound (zero on a sound ledger).
    entries_total = models.BigIntegerField()
    # What the sequences stood at when this run began: a later run trusts them.
    entry_seen = models.BigIntegerField()
    transfer_seen = models.BigIntegerField()
    # Whether this run checked the whole ledger (and summed the accounts anew).
    full = models.BooleanField()
    # When the run began (and read entry_seen and transfer_seen).
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"checkpoint #{self.pk} up to transfer {self.transfer_bound}"


class LedgerCheckpointBalance(models.Model):
    """An account's entries summed up to the latest checkpoint's entry bound."""

    account = models.OneToOneField(Account, primary_key=True, on_delete=models.PROTECT,
                                   related_name="+", db_constraint=False)
    entries_total = models.BigIntegerField()

    def __str__(self) -> str:
        return f"account {self.account_id}: {self.entries_total}"
