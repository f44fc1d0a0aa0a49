"""A Hypothesis state machine drives transfers, holds, captures, releases and reversals
against a plain in-memory model of the balances and checks every invariant after every
step."""

import itertools
from typing import Any

import pytest
from django.db import connection
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from banking.errors import InsufficientFunds
from banking.invariants import ledger_verify
from banking.models import Account, Transfer
from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors import organization_account_ids
from banking.services.customers import organization_create
from banking.services.holds import HoldClosed, HoldExceeded, hold_capture, hold_place, hold_release
from banking.services.ledger import (
    REFERENCE_ENGINE,
    grant_post,
    posting_engine,
    transfer_reverse,
    transfer_spec,
)
from core.errors import DomainError

names = itertools.count()
amounts = st.integers(min_value=1, max_value=400)


class LedgerMachine(RuleBasedStateMachine):
    """Transfers through `engine`; holds, grants and reversals through the services."""

    engine = staticmethod(posting_engine(connection.vendor))
    orgs = Bundle("orgs")
    holds = Bundle("holds")
    transfers = Bundle("transfers")

    def __init__(self) -> None:
        super().__init__()
        self.wallet: dict[int, int] = {}
        self.held: dict[int, int] = {}
        self.hold_left: dict[int, int] = {}
        self.hold_org: dict[int, int] = {}
        self.reversed: set[int] = set()
        self.transfer_legs: dict[int, tuple[int, int, int]] = {}
        self.ids: dict[int, dict[str, int]] = {}
        self.keys = itertools.count()

    def key(self) -> str:
        return f"m{next(names)}-{next(self.keys)}"

    def transfer_post(self, **spec: Any) -> Transfer:
        return self.engine(transfer_spec(**spec))

    @initialize(target=orgs, funds=st.lists(st.integers(0, 1_000), min_size=3, max_size=3))
    def open_organizations(self, funds: list[int]) -> object:
        created = []
        for amount in funds:
            org = organization_create(name=f"model-{next(names)}")
            self.ids[org.pk] = organization_account_ids(org.pk)
            self.wallet[org.pk] = self.held[org.pk] = 0
            if amount:
                grant_post(organization_id=org.pk, amount=amount, reason="seed")
                self.wallet[org.pk] = amount
            created.append(org.pk)
        return multiple(*created)

    @rule(target=transfers, payer=orgs, payee=orgs, amount=amounts)
    def move(self, payer: int, payee: int, amount: int) -> object:
        if payer == payee:
            return multiple()
        legs = [(self.ids[payer]["wallet"], -amount), (self.ids[payee]["wallet"], amount)]
        if self.wallet[payer] < amount:
            with pytest.raises(InsufficientFunds):
                self.transfer_post(kind=TransferKind.TRANSFER, idempotency_key=self.key(),
                                   legs=legs)
            return multiple()
        key = self.key()
        transfer = self.transfer_post(kind=TransferKind.TRANSFER, idempotency_key=key, legs=legs)
        # a replay of the same request posts nothing more
        replay = self.transfer_post(kind=TransferKind.TRANSFER, idempotency_key=key, legs=legs)
        assert replay.pk == transfer.pk
        self.wallet[payer] -= amount
        self.wallet[payee] += amount
        self.transfer_legs[transfer.pk] = (payer, payee, amount)
        return transfer.pk

    @rule(org=orgs, amount=amounts)
    def grant(self, org: int, amount: int) -> None:
        grant_post(organization_id=org, amount=amount, reason="more")
        self.wallet[org] += amount

    @rule(target=holds, org=orgs, amount=amounts)
    def place(self, org: int, amount: int) -> object:
        if self.wallet[org] < amount:
            with pytest.raises(InsufficientFunds):
                hold_place(organization_id=org, amount=amount, reference="m",
                           idempotency_key=self.key())
            return multiple()
        hold = hold_place(organization_id=org, amount=amount, reference="m",
                          idempotency_key=self.key())
        self.wallet[org] -= amount
        self.held[org] += amount
        self.hold_left[hold.pk] = amount
        self.hold_org[hold.pk] = org
        return hold.pk

    @rule(hold=holds, payee=orgs, amount=amounts)
    def capture(self, hold: int, payee: int, amount: int) -> None:
        left = self.hold_left[hold]
        legs = [(self.ids[payee]["wallet"], amount)]
        if left == 0:
            with pytest.raises(HoldClosed):
                hold_capture(hold_id=hold, legs=legs, idempotency_key=self.key())
            return
        if amount > left:
            with pytest.raises(HoldExceeded):
                hold_capture(hold_id=hold, legs=legs, idempotency_key=self.key())
            return
        hold_capture(hold_id=hold, legs=legs, idempotency_key=self.key())
        self.hold_left[hold] -= amount
        self.held[self.hold_org[hold]] -= amount
        self.wallet[payee] += amount

    @rule(hold=holds, part=st.none() | amounts)
    def release(self, hold: int, part: int | None) -> None:
        left = self.hold_left[hold]
        if left == 0 or (part is not None and part > left):
            if part is None:
                assert hold_release(hold_id=hold, idempotency_key=self.key()) is None
            else:
                with pytest.raises(DomainError):
                    hold_release(hold_id=hold, idempotency_key=self.key(), amount=part)
            return
        amount = left if part is None else part
        hold_release(hold_id=hold, idempotency_key=self.key(), amount=part)
        self.hold_left[hold] -= amount
        org = self.hold_org[hold]
        self.held[org] -= amount
        self.wallet[org] += amount

    @rule(transfer=transfers)
    def reverse(self, transfer: int) -> None:
        payer, payee, amount = self.transfer_legs[transfer]
        if transfer in self.reversed:
            transfer_reverse(transfer_id=transfer)  # idempotent: changes nothing
            return
        if self.wallet[payee] < amount:
            with pytest.raises(InsufficientFunds):
                transfer_reverse(transfer_id=transfer)
            return
        transfer_reverse(transfer_id=transfer)
        self.reversed.add(transfer)
        self.wallet[payee] -= amount
        self.wallet[payer] += amount

    @invariant()
    def balances_match_the_model(self) -> None:
        if not self.ids:
            return
        accounts = {
            (a.organization_id, a.purpose): a.balance
            for a in Account.objects.filter(organization_id__in=self.ids)
        }
        for org in self.ids:
            assert accounts[(org, AccountPurpose.WALLET)] == self.wallet[org]
            assert accounts[(org, AccountPurpose.HELD)] == self.held[org]

    @invariant()
    def ledger_invariants_hold(self) -> None:
        assert ledger_verify() == []


class ReferenceLedgerMachine(LedgerMachine):
    """The same rules with transfers through the Python form, whatever the database."""

    engine = staticmethod(REFERENCE_ENGINE)


@pytest.mark.parametrize("machine", [LedgerMachine, ReferenceLedgerMachine],
                         ids=["vendor-engine", "python"])
def test_ledger_matches_a_simple_model(db: None, machine: type[LedgerMachine]) -> None:
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=30,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
