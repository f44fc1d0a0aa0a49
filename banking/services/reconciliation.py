"""Money in equals money out (DESIGN §4, invariant 5): what the payment provider says was
paid, refunded and transferred against the ledger's card-clearing and payout-clearing
transfers. Reads only; every difference is reported, none is fixed."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Sum

from banking.gateway import GatewayError, get_gateway
from banking.models import Entry, Payout, TopUp
from banking.models.ledger import AccountPurpose, TransferKind
from banking.services.ledger import system_account
from banking.services.payments import tokens_for_refund


@dataclass(frozen=True)
class Mismatch:
    kind: str
    reference: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.reference}: {self.detail}"


@dataclass
class ReconciliationReport:
    payments: int = 0
    refunds: int = 0
    transfers: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.mismatches


def _clearing_sums(purpose: str, kind: str, references: list[str],
                   key_prefix: str = "") -> dict[str, int]:
    clearing = system_account(purpose)
    qs = Entry.objects.filter(
        account=clearing, transfer__kind=kind, transfer__reference__in=references
    )
    if key_prefix:
        qs = qs.filter(transfer__idempotency_key__startswith=key_prefix)
    rows = qs.values("transfer__reference").annotate(total=Sum("amount"))
    return {r["transfer__reference"]: int(r["total"]) for r in rows}


def stripe_reconcile(*, since: datetime | None = None) -> ReconciliationReport:
    """Compare Stripe's succeeded payments, refunds and transfers created at or after
    `since` (everything when None) with the ledger."""
    gateway = get_gateway()
    since_ts = int(since.timestamp()) if since is not None else None
    report = ReconciliationReport()
    found = report.mismatches

    # Payments -> top-ups credited from card clearing.
    payments = gateway.payments_succeeded_list(since=since_ts)
    report.payments = len(payments)
    paid_ids = {p.id for p in payments}
    topups = {
        t.payment_intent_id: t
        for t in TopUp.objects.filter(payment_intent_id__in=paid_ids)
    }
    credited = _clearing_sums(
        AccountPurpose.CARD_CLEARING, TransferKind.TOPUP,
        [f"topup:{t.pk}" for t in topups.values()],
    )
    for pi in payments:
        topup = topups.get(pi.id)
        if topup is None:
            found.append(Mismatch("payment_unknown", pi.id,
                                  f"succeeded payment of {pi.amount_cents} {pi.currency} "
                                  "has no top-up"))
            continue
        ref = f"topup:{topup.pk}"
        if pi.amount_cents != topup.amount_cents or pi.currency != topup.currency:
            found.append(Mismatch("payment_amount_mismatch", ref,
                                  f"Stripe {pi.amount_cents} {pi.currency}, top-up "
                                  f"{topup.amount_cents} {topup.currency}"))
        if ref not in credited:
            found.append(Mismatch("payment_not_credited", ref,
                                  f"payment {pi.id} succeeded but no tokens were credited"))
        elif -credited[ref] != topup.tokens:
            found.append(Mismatch("credit_amount_mismatch", ref,
                                  f"card clearing moved {-credited[ref]} tokens, the top-up "
                                  f"bought {topup.tokens}"))

    # Credits in the ledger -> a succeeded payment at Stripe.
    credited_topups = TopUp.objects.filter(credit_transfer__isnull=False)
    if since is not None:
        credited_topups = credited_topups.filter(credit_transfer__created_at__gte=since)
    for topup in credited_topups.exclude(payment_intent_id__in=paid_ids).order_by("id"):
        ref = f"topup:{topup.pk}"
        if topup.payment_intent_id is None:
            found.append(Mismatch("credit_without_payment", ref, "credited with no payment"))
            continue
        try:
            pi = gateway.payment_intent_retrieve(topup.payment_intent_id)
        except GatewayError as exc:
            found.append(Mismatch("credit_without_payment", ref,
                                  f"{topup.payment_intent_id}: {exc.message}"))
            continue
        if not pi.succeeded:
            found.append(Mismatch("credit_without_payment", ref,
                                  f"{pi.id} is {pi.status} at Stripe but tokens were credited"))

    # Refunds: Stripe's refunded total per charge -> tokens taken back from the wallet.
    refunds = [r for r in gateway.refunds_list(since=since_ts) if r.status == "succeeded"]
    report.refunds = len(refunds)
    refunded_pis = {r.payment_intent_id for r in refunds if r.payment_intent_id}
    local_refunded = TopUp.objects.filter(refunded_cents__gt=0)
    if since is not None:
        local_refunded = local_refunded.filter(updated_at__gte=since)
    check: dict[str, TopUp] = {}
    for t in [*TopUp.objects.filter(payment_intent_id__in=refunded_pis), *local_refunded]:
        if t.payment_intent_id is not None:
            check[t.payment_intent_id] = t
    # A refunded charge may be older than `since`: list them all when there is one.
    charges = {
        c.payment_intent_id: c
        for c in (gateway.charges_list(since=None) if check else [])
        if c.payment_intent_id and c.status == "succeeded"
    }
    taken_back = _clearing_sums(
        AccountPurpose.CARD_CLEARING, TransferKind.REFUND,
        [f"topup:{t.pk}" for t in check.values()], key_prefix="topup-refund:",
    )
    for pi_id in sorted(refunded_pis - set(check)):
        found.append(Mismatch("refund_unknown", pi_id, "refund of a payment with no top-up"))
    for pi_id, topup in sorted(check.items(), key=lambda kv: kv[1].pk):
        ref = f"topup:{topup.pk}"
        charge = charges.get(pi_id)
        stripe_cents = charge.amount_refunded_cents if charge is not None else 0
        if stripe_cents != topup.refunded_cents:
            kind = "refund_not_recorded" if stripe_cents > topup.refunded_cents else (
                "refund_without_stripe_refund")
            found.append(Mismatch(kind, ref, f"Stripe refunded {stripe_cents} cents, the "
                                             f"ledger {topup.refunded_cents}"))
        expected = tokens_for_refund(tokens=topup.tokens, amount_cents=topup.amount_cents,
                                     refunded_cents=topup.refunded_cents)
        if taken_back.get(ref, 0) != expected:
            found.append(Mismatch("refund_amount_mismatch", ref,
                                  f"card clearing took back {taken_back.get(ref, 0)} tokens, "
                                  f"expected {expected}"))

    # Transfers to providers -> paid payouts captured into payout clearing.
    transfers = [t for t in gateway.payout_transfers_list(since=since_ts) if t.status == "paid"]
    report.transfers = len(transfers)
    payouts = {
        p.stripe_transfer_id: p
        for p in Payout.objects.filter(stripe_transfer_id__in=[t.id for t in transfers])
    }
    paid_local = Payout.objects.filter(status=Payout.Status.PAID)
    if since is not None:
        paid_local = paid_local.filter(executed_at__gte=since)
    all_payouts = {p.pk: p for p in [*payouts.values(), *paid_local]}
    cleared = _clearing_sums(
        AccountPurpose.PAYOUT_CLEARING, TransferKind.CAPTURE,
        [f"payout:{pk}" for pk in all_payouts],
    )
    stripe_transfer_ids = {t.id for t in transfers}
    for transfer in transfers:
        payout = payouts.get(transfer.id)
        if payout is None:
            found.append(Mismatch("transfer_unknown", transfer.id,
                                  f"transfer of {transfer.amount_cents} {transfer.currency} "
                                  "has no payout"))
        elif transfer.amount_cents != payout.amount_cents or payout.status != Payout.Status.PAID:
            found.append(Mismatch("transfer_mismatch", f"payout:{payout.pk}",
                                  f"Stripe {transfer.amount_cents} {transfer.currency}, payout "
                                  f"{payout.amount_cents} {payout.currency} ({payout.status})"))
    per_payout: dict[int, int] = defaultdict(int)
    for pk in all_payouts:
        per_payout[pk] = cleared.get(f"payout:{pk}", 0)
    for payout in sorted(all_payouts.values(), key=lambda p: p.pk):
        ref = f"payout:{payout.pk}"
        if payout.status == Payout.Status.PAID and payout.stripe_transfer_id not in (
            stripe_transfer_ids
        ):
            found.append(Mismatch("payout_without_transfer", ref,
                                  f"paid, but Stripe has no transfer {payout.stripe_transfer_id}"))
        if payout.status == Payout.Status.PAID and per_payout[payout.pk] != payout.tokens:
            found.append(Mismatch("payout_clearing_mismatch", ref,
                                  f"payout clearing received {per_payout[payout.pk]} tokens, "
                                  f"the payout is {payout.tokens}"))
    return report
