"""The statement a person reads: one line per job (all its captures), per top-up, block,
installment, advance, payout, grant; holds and releases, which only move tokens between
the organization's own wallet and held accounts, are not lines at all.

Amounts are on the organization's money (wallet plus held), so a job's line is what it
was charged, fee included, and the running balance is available plus held after it.
The raw ledger stays `banking.selectors.statement_list` (and `wallet/transfers/`).

It lives in the marketplace because a job's line names its GPUs and node: the ledger
knows nothing of GPUs.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db.models import Sum
from django.urls import reverse

from banking.fiat_display import usd_text
from banking.models import Account, Entry, Payout, TopUp
from banking.models.ledger import AccountPurpose, TransferKind
from marketplace.models import Block, CapacityDeposit
from scheduler.models import Job

# The most recent transfers a statement groups; older ones are reached by dates.
MAX_TRANSFERS = 5000
OWN_MONEY = (AccountPurpose.WALLET, AccountPurpose.HELD)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Capture:
    at: datetime
    amount: int
    memo: str


@dataclass
class StatementLine:
    at: datetime
    kind: str
    description: str
    amount: int
    balance: int = 0
    url: str = ""
    captures: list[Capture] = field(default_factory=list)
    job_id: int | None = None
    gpu_class: str = ""
    gpu_count: int = 0
    duration_s: int = 0
    node: str = ""
    # the line's newest transfer: with `at`, where the line stands in the statement
    transfer_id: int = 0

    @property
    def usd(self) -> str:
        return usd_text(self.amount)

    @property
    def duration(self) -> str:
        minutes, seconds = divmod(self.duration_s, 60)
        hours, minutes = divmod(minutes, 60)
        if hours:
            return f"{hours} h {minutes:02d} min"
        if minutes:
            return f"{minutes} min {seconds:02d} s"
        return f"{seconds} s"


def _ref(reference: str, prefix: str) -> int | None:
    if not reference.startswith(prefix + ":"):
        return None
    tail = reference[len(prefix) + 1:]
    return int(tail) if tail.isdigit() else None


def statement_lines(*, organization_id: int, date_from: date | None = None,
                    date_to: date | None = None) -> list[StatementLine]:
    """The organization's statement lines, newest first, each with the balance after it."""
    qs = Entry.objects.filter(account__organization_id=organization_id,
                              account__purpose__in=OWN_MONEY)
    if date_from:
        qs = qs.filter(transfer__created_at__date__gte=date_from)
    if date_to:
        qs = qs.filter(transfer__created_at__date__lte=date_to)
    rows: list[dict[str, Any]] = [dict(r) for r in (
        qs.values("transfer_id", "transfer__kind", "transfer__reference", "transfer__memo",
                  "transfer__created_at")
        .annotate(total=Sum("amount")).order_by("-transfer_id")[:MAX_TRANSFERS])]
    rows.reverse()
    current = Account.objects.filter(organization_id=organization_id,
                                     purpose__in=OWN_MONEY).aggregate(s=Sum("balance"))["s"] or 0
    later = 0
    if date_to and rows:
        later = Entry.objects.filter(
            account__organization_id=organization_id, account__purpose__in=OWN_MONEY,
            transfer_id__gt=rows[-1]["transfer_id"]).aggregate(s=Sum("amount"))["s"] or 0
    moved = [r for r in rows if r["total"]]
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    order: list[str] = []
    for r in moved:
        kind, reference = r["transfer__kind"], r["transfer__reference"] or ""
        key = f"t:{r['transfer_id']}"
        if kind == TransferKind.CAPTURE and _ref(reference, "job") is not None:
            key = reference
        elif kind == TransferKind.YIELD and _ref(reference, "deposit") is not None:
            key = f"{reference}:{r['transfer__created_at']:%Y-%m-%d}"
        if key not in groups:
            order.append(key)
        groups[key].append(r)
    lines = _describe(organization_id, [groups[k] for k in order])
    lines.sort(key=line_key)
    balance = current - later - sum(line.amount for line in lines)
    for line in lines:
        balance += line.amount
        line.balance = balance
    lines.reverse()
    return lines


def line_key(line: StatementLine) -> tuple[int, int]:
    """Where a line stands, oldest first: its time, then its newest transfer (unique to
    the line), so that a page's cursor names one line exactly."""
    return (line.at - _EPOCH) // timedelta(microseconds=1), line.transfer_id


def _describe(organization_id: int, groups: list[list[dict[str, Any]]]) -> list[StatementLine]:
    refs: dict[str, set[int]] = defaultdict(set)
    for group in groups:
        for r in group:
            reference = r["transfer__reference"] or ""
            prefix = reference.split(":", 1)[0]
            number = _ref(reference, prefix)
            if number is not None:
                refs[prefix].add(number)
    jobs = {j.pk: j for j in Job.objects.filter(pk__in=refs["job"])
            .select_related("gpu_class", "node")}
    usage = dict(Job.objects.filter(pk__in=refs["job"]).annotate(
        s=Sum("assignments__gpu_seconds")).values_list("pk", "s"))
    topups = {t.pk: t for t in TopUp.objects.filter(pk__in=refs["topup"],
                                                    organization_id=organization_id)}
    blocks = {b.pk: b for b in Block.objects.filter(pk__in=refs["block"],
                                                    organization_id=organization_id)
              .select_related("gpu_class")}
    payouts = {p.pk: p for p in Payout.objects.filter(pk__in=refs["payout"],
                                                      organization_id=organization_id)}
    deposits = {d.pk: d for d in CapacityDeposit.objects.filter(
        pk__in=refs["deposit"], provider_id=organization_id).select_related("node")}
    lines = []
    for group in groups:
        first = group[0]
        kind = first["transfer__kind"]
        reference = first["transfer__reference"] or ""
        line = StatementLine(at=group[-1]["transfer__created_at"], kind=kind, description="",
                             amount=sum(r["total"] for r in group),
                             transfer_id=group[-1]["transfer_id"])
        job_id = _ref(reference, "job")
        if kind == TransferKind.CAPTURE and job_id is not None:
            _job_line(line, organization_id, jobs.get(job_id), job_id, usage.get(job_id) or 0)
            line.captures = [Capture(r["transfer__created_at"], r["total"], r["transfer__memo"])
                             for r in group]
        elif kind == TransferKind.YIELD:
            deposit = deposits.get(_ref(reference, "deposit") or 0)
            where = f"{deposit.node.name}, {deposit.gpu_count} GPUs" if deposit else "a deposit"
            line.description = (f"Availability yield: {where} "
                                f"({len(group)} interval{'' if len(group) == 1 else 's'})")
            line.url = reverse("store:provider")
        else:
            line.description, line.url = _other(kind, reference, first["transfer__memo"] or "",
                                                topups, blocks, payouts)
            if _ref(reference, "payout") is not None:
                line.kind = TransferKind.PAYOUT
        lines.append(line)
    return lines


def _job_line(line: StatementLine, organization_id: int, job: Job | None, job_id: int,
              gpu_seconds: int) -> None:
    line.kind = "job"
    line.job_id = job_id
    if job is None:
        line.description = f"Job #{job_id}"
        return
    line.gpu_class = job.gpu_class.name
    line.gpu_count = job.gpu_count
    line.duration_s = gpu_seconds // max(1, job.gpu_count)
    line.node = job.node.name if job.node else ""
    shape = f"{job.gpu_count} \u00d7 {job.gpu_class.name}"
    on = f" on {line.node}" if line.node else ""
    if job.organization_id == organization_id:
        line.description = f"Job #{job_id}: {shape}, {line.duration}{on}"
        line.url = reverse("store:job_detail", args=[job_id])
    else:
        line.kind = "earning"
        line.description = f"Earned: a job on your node{on} ({shape}, {line.duration})"


def _other(kind: str, reference: str, memo: str, topups: dict[int, TopUp],
           blocks: dict[int, Block], payouts: dict[int, Payout]) -> tuple[str, str]:
    wallet = reverse("store:wallet")
    if kind in (TransferKind.TOPUP, TransferKind.REFUND):
        topup = topups.get(_ref(reference, "topup") or 0)
        paid = f" of ${topup.amount_cents / 100:,.2f}" if topup else ""
        return ("Card top-up" if kind == TransferKind.TOPUP else "Card refund") + paid, wallet
    if kind in (TransferKind.PURCHASE, TransferKind.SELL_BACK, TransferKind.SLA_CREDIT):
        block = blocks.get(_ref(reference, "block") or 0)
        what = (f"block #{block.pk}: {block.gpu_count} \u00d7 {block.gpu_class.name}, "
                f"{block.start:%m-%d %H:%M} → {block.end:%m-%d %H:%M} UTC" if block else "a block")
        label = {TransferKind.PURCHASE: "Bought", TransferKind.SELL_BACK: "Sold back",
                 TransferKind.SLA_CREDIT: "SLA credit for"}[TransferKind(kind)]
        down = " (down payment)" if "down payment" in memo else ""
        return f"{label} {what}{down}", reverse("store:blocks")
    if kind in (TransferKind.INSTALLMENT, TransferKind.LOAN, TransferKind.WRITE_OFF):
        loan = _ref(reference, "loan")
        label = {TransferKind.INSTALLMENT: "Installment", TransferKind.LOAN: "Loan",
                 TransferKind.WRITE_OFF: "Write-off"}[TransferKind(kind)]
        return f"{label} of loan #{loan}" if loan else label, reverse("store:loans")
    if kind == TransferKind.ADVANCE:
        return "Advance on your deposits' expected yield", reverse("store:provider")
    if kind == TransferKind.PAYOUT or _ref(reference, "payout") is not None:
        # a payout is captured from its hold: the reference says what it was
        payout = payouts.get(_ref(reference, "payout") or 0)
        if payout:
            return (f"Payout to {payout.destination}: {payout.currency.upper()} "
                    f"{payout.amount_cents / 100:,.2f}", reverse("store:provider"))
        return "Payout", reverse("store:provider")
    if kind == TransferKind.GRANT:
        return f"Grant: {memo}" if memo else "Grant", wallet
    label = TransferKind(kind).label if kind in TransferKind.values else kind
    return (f"{label}: {memo}" if memo else label), wallet
