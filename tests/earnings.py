"""Tokens earned as a provider, for tests of what may be cashed out: the bank pays the
wallet (as availability yield does) and records the tokens as payable."""

import uuid

from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors import organization_account_ids
from banking.services.ledger import system_account, transfer_post
from banking.services.payable import payable_earn
from banking.services.transactions import money_transaction


@money_transaction
def earn(organization_id: int, amount: int) -> None:
    key = f"test-earning:{uuid.uuid4().hex}"
    wallet = organization_account_ids(organization_id)[AccountPurpose.WALLET]
    transfer_post(kind=TransferKind.YIELD, idempotency_key=key,
                  legs=[(system_account(AccountPurpose.BANK_CAPACITY).pk, -amount),
                        (wallet, amount)], reference="test", memo="earned in a test")
    payable_earn(organization_id=organization_id, amount=amount, idempotency_key=key,
                 reference="test", memo="earned in a test")
