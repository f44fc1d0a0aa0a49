"""GET /api/v1/wallet/transfers/{id}/: one transfer, with the caller's entries in it."""

import pytest
from rest_framework.test import APIClient

from banking.models.ledger import AccountPurpose, TransferKind
from banking.selectors import organization_account
from banking.services.ledger import transfer_post


@pytest.fixture
def moved(make_org):
    payer, payee = make_org(tokens=1_000), make_org()
    transfer = transfer_post(
        kind=TransferKind.TRANSFER, idempotency_key="detail", memo="rent", reference="r:1",
        legs=[(organization_account(payer.pk, AccountPurpose.WALLET).pk, -400),
              (organization_account(payee.pk, AccountPurpose.WALLET).pk, 400)])
    return payer, payee, transfer


def test_each_party_sees_the_transfer_with_its_own_entries(moved, api_client_for):
    payer, payee, transfer = moved
    body = api_client_for(payer).get(f"/api/v1/wallet/transfers/{transfer.pk}/").json()
    wallet = organization_account(payer.pk, AccountPurpose.WALLET)
    entry = wallet.entries.get(transfer_id=transfer.pk)
    assert body == {
        "id": transfer.pk, "created_at": body["created_at"], "kind": "transfer",
        "reference": "r:1", "memo": "rent", "reverses_id": None,
        "entries": [{"entry_id": entry.pk, "account": "wallet", "amount": -400}],
    }
    theirs = api_client_for(payee).get(f"/api/v1/wallet/transfers/{transfer.pk}/").json()
    assert [e["amount"] for e in theirs["entries"]] == [400]


@pytest.mark.parametrize("transfer_id", ["{pk}", "987654321", "99999999999999999999999"])
def test_another_organizations_or_no_transfer_is_not_found(moved, make_org, api_client_for,
                                                            transfer_id):
    _payer, _payee, transfer = moved
    stranger = api_client_for(make_org())
    response = stranger.get(f"/api/v1/wallet/transfers/{transfer_id.format(pk=transfer.pk)}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_anonymous_callers_are_refused(moved):
    _payer, _payee, transfer = moved
    response = APIClient().get(f"/api/v1/wallet/transfers/{transfer.pk}/")
    assert response.status_code in {401, 403}
    assert response.json()["error"]["code"] in {"not_authenticated", "authentication_failed"}
