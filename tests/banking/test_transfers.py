"""The posting service: single and batch forms, idempotency, floors, reversals."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from banking.error_codes import BankingErrorCode
from banking.errors import IdempotencyConflict, InsufficientFunds
from banking.models import Account, Entry, Transfer
from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors import organization_account, wallet_get
from banking.services.ledger import (
    REFERENCE_ENGINE,
    grant_post,
    posting_engine,
    system_account,
    transfer_post,
    transfer_reverse,
    transfer_spec,
    transfers_post_batch,
)
from core.errors import InvalidInput, NotFound


def wallet_id(org) -> int:
    return organization_account(org.pk, AccountPurpose.WALLET).pk


@pytest.fixture
def two_funded(make_org):
    return make_org(tokens=1_000), make_org(tokens=0)


def captures(prefix: str, payer: int, payee: int, amount: int, n: int) -> list:
    """n batch transfers of `amount` from `payer` to `payee`, keyed prefix0, prefix1..."""
    return [
        transfer_spec(kind=TransferKind.CAPTURE, idempotency_key=f"{prefix}{i}",
                      legs=[(payer, -amount), (payee, amount)])
        for i in range(n)
    ]


def move(a, b, amount, key):
    return transfer_post(
        kind=TransferKind.TRANSFER, idempotency_key=key, legs=[(wallet_id(a), -amount),
                                                              (wallet_id(b), amount)]
    )


def test_a_transfer_moves_tokens_and_keeps_balances_equal_to_entries(two_funded):
    a, b = two_funded
    transfer = move(a, b, 300, "k1")
    assert wallet_get(organization_id=a.pk).available == 700
    assert wallet_get(organization_id=b.pk).available == 300
    assert sorted(e.amount for e in transfer.entries.all()) == [-300, 300]


def test_a_repeated_key_with_the_same_body_posts_once(two_funded):
    a, b = two_funded
    first = move(a, b, 100, "same")
    again = move(a, b, 100, "same")
    assert again.pk == first.pk
    assert Transfer.objects.filter(idempotency_key="same").count() == 1
    assert wallet_get(organization_id=a.pk).available == 900


def test_a_repeated_key_with_another_body_is_a_conflict_and_posts_nothing(two_funded):
    a, b = two_funded
    move(a, b, 100, "k")
    before = Transfer.objects.count()
    with pytest.raises(IdempotencyConflict, match="different request"):
        move(a, b, 101, "k")
    assert Transfer.objects.count() == before
    assert wallet_get(organization_id=b.pk).available == 100


def test_overspending_raises_insufficient_funds_and_changes_nothing(two_funded):
    a, b = two_funded
    entries_before = Entry.objects.count()
    with pytest.raises(InsufficientFunds, match="1000 available, 1001 needed") as info:
        move(a, b, 1_001, "too-much")
    assert info.value.code == BankingErrorCode.INSUFFICIENT_FUNDS
    assert Entry.objects.count() == entries_before
    assert not Transfer.objects.filter(idempotency_key="too-much").exists()
    assert wallet_get(organization_id=a.pk).available == 1_000


@pytest.mark.parametrize("amount", [0, -5, 1.5, "10", True])
def test_non_whole_or_non_positive_amounts_are_refused(two_funded, amount):
    a, b = two_funded
    with pytest.raises(InvalidInput):
        transfer_post(kind=TransferKind.TRANSFER, idempotency_key="bad",
                      legs=[(wallet_id(a), -1), (wallet_id(b), 1), (wallet_id(b), amount)])
    with pytest.raises(InvalidInput):
        grant_post(organization_id=a.pk, amount=amount, reason="x")
    assert not Transfer.objects.filter(idempotency_key="bad").exists()


def test_entries_that_do_not_sum_to_zero_are_refused(two_funded):
    a, b = two_funded
    with pytest.raises(InvalidInput) as info:
        transfer_post(kind=TransferKind.TRANSFER, idempotency_key="u",
                      legs=[(wallet_id(a), -10), (wallet_id(b), 9)])
    assert info.value.code == BankingErrorCode.UNBALANCED_TRANSFER
    assert Transfer.objects.filter(idempotency_key="u").count() == 0


def test_an_unknown_account_is_refused(two_funded):
    a, _ = two_funded
    with pytest.raises(NotFound, match="Unknown account"):
        transfer_post(kind=TransferKind.TRANSFER, idempotency_key="x",
                      legs=[(wallet_id(a), -10), (987654321, 10)])
    assert wallet_get(organization_id=a.pk).available == 1_000


def test_a_reversal_mirrors_the_transfer_once(two_funded):
    a, b = two_funded
    original = move(a, b, 250, "orig")
    reversal = transfer_reverse(transfer_id=original.pk)
    assert reversal.reverses_id == original.pk
    assert wallet_get(organization_id=a.pk).available == 1_000
    assert transfer_reverse(transfer_id=original.pk).pk == reversal.pk  # idempotent
    with pytest.raises(InvalidInput) as info:
        transfer_reverse(transfer_id=reversal.pk)
    assert info.value.code == BankingErrorCode.REVERSAL_OF_REVERSAL
    with pytest.raises(Exception, match="already been reversed"):
        transfer_reverse(transfer_id=original.pk, idempotency_key="other-key")
    assert Transfer.objects.filter(reverses=original).count() == 1


def test_a_reversal_respects_floors(two_funded):
    a, b = two_funded
    original = move(a, b, 400, "o")
    move(b, a, 300, "spent")
    with pytest.raises(InsufficientFunds):
        transfer_reverse(transfer_id=original.pk)
    assert not Transfer.objects.filter(reverses=original).exists()


def test_a_reversal_goes_through_the_vendors_engine(two_funded):
    """Reversals take the same entry point as every single transfer: on PostgreSQL the
    posting function (on its own cursor), not the Python form's account locks."""
    a, b = two_funded
    original = move(a, b, 250, "engine")
    with CaptureQueriesContext(connection) as queries:
        transfer_reverse(transfer_id=original.pk)
    python_locks = [q for q in queries.captured_queries if "FOR NO KEY UPDATE" in q["sql"]]
    if connection.vendor == "postgresql":
        assert python_locks == []
    assert wallet_get(organization_id=b.pk).available == 0


def test_the_engine_is_chosen_by_vendor():
    assert posting_engine("postgresql") is not REFERENCE_ENGINE
    assert posting_engine("sqlite") is REFERENCE_ENGINE


def test_the_batch_form_posts_many_transfers_with_one_update_per_account(make_org):
    payers = [make_org(tokens=100) for _ in range(5)]
    revenue = system_account(AccountPurpose.PLATFORM_REVENUE)
    start = Account.objects.get(pk=revenue.pk).balance
    specs = [
        transfer_spec(kind=TransferKind.CAPTURE, idempotency_key=f"b{i}",
                      legs=[(wallet_id(payers[i % 5]), -7), (revenue.pk, 7)])
        for i in range(50)
    ]
    with CaptureQueriesContext(connection) as ctx:
        result = transfers_post_batch(specs)
    updates = [q for q in ctx.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 1
    assert result.posted == 50
    assert Account.objects.get(pk=revenue.pk).balance == start + 350
    assert [wallet_get(organization_id=p.pk).available for p in payers] == [30] * 5
    replay = transfers_post_batch(specs)
    assert (replay.posted, replay.replayed) == (0, 50)
    assert Account.objects.get(pk=revenue.pk).balance == start + 350


def test_a_batch_that_would_overdraw_any_account_posts_nothing(make_org):
    payer = make_org(tokens=10)
    revenue = system_account(AccountPurpose.PLATFORM_REVENUE)
    specs = captures("o", wallet_id(payer), revenue.pk, 4, 3)
    with pytest.raises(InsufficientFunds):
        transfers_post_batch(specs)
    assert not Transfer.objects.filter(idempotency_key__startswith="o").exists()
    assert wallet_get(organization_id=payer.pk).available == 10


def test_a_grant_with_a_key_is_posted_once(org):
    grant_post(organization_id=org.pk, amount=500, reason="welcome", idempotency_key="w")
    grant_post(organization_id=org.pk, amount=500, reason="welcome", idempotency_key="w")
    assert wallet_get(organization_id=org.pk).available == 500
    assert system_account(AccountPurpose.PROMOTIONS).balance == -500


def test_a_batch_naming_an_unknown_account_is_refused_and_posts_nothing(make_org):
    payer = make_org(tokens=100)
    specs = captures("u", wallet_id(payer), 10**9, 4, 3)
    with pytest.raises(NotFound):
        transfers_post_batch(specs)
    assert not Transfer.objects.filter(idempotency_key__startswith="u").exists()
    assert wallet_get(organization_id=payer.pk).available == 100


def test_a_batch_reusing_a_key_for_another_body_is_a_conflict_and_posts_nothing(make_org):
    payer = make_org(tokens=100)
    revenue = system_account(AccountPurpose.PLATFORM_REVENUE).pk
    transfers_post_batch(captures("r", wallet_id(payer), revenue, 4, 1))
    specs = captures("r", wallet_id(payer), revenue, 5, 3)
    with pytest.raises(IdempotencyConflict):
        transfers_post_batch(specs)
    assert list(Transfer.objects.filter(idempotency_key__startswith="r")
                .values_list("idempotency_key", flat=True)) == ["r0"]
    assert wallet_get(organization_id=payer.pk).available == 96


def test_a_batch_partly_posted_before_posts_only_the_rest(make_org):
    payer = make_org(tokens=100)
    revenue = system_account(AccountPurpose.PLATFORM_REVENUE).pk
    specs = captures("p", wallet_id(payer), revenue, 2, 6)
    first = transfers_post_batch(specs[:2])
    result = transfers_post_batch(specs)
    assert (result.posted, result.replayed) == (4, 2)
    assert result.transfer_ids[:2] == first.transfer_ids
    assert wallet_get(organization_id=payer.pk).available == 88
