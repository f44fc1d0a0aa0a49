"""Operators in Django admin: a read-only ledger, reversals, ledger health."""

import pytest
from django.contrib.auth.models import User

from banking.models import Organization, Transfer
from banking.selectors import wallet_get
from banking.services.ledger import grant_post
from tests.operators import operator_sign_in


@pytest.fixture
def operator_client(client, db):
    user = User.objects.create_superuser("operator", "op@example.com", "pw-operator-1")
    return operator_sign_in(client, user, "pw-operator-1")


def test_transfers_and_entries_cannot_be_added_changed_or_deleted(operator_client, make_org):
    org = make_org(tokens=10)
    transfer = Transfer.objects.filter(reference=f"organization:{org.pk}").get()
    assert operator_client.get("/admin/banking/transfer/add/").status_code == 403
    page = operator_client.get(f"/admin/banking/transfer/{transfer.pk}/change/")
    assert page.status_code == 200
    assert b'name="memo"' not in page.content  # shown, not editable
    response = operator_client.post(f"/admin/banking/transfer/{transfer.pk}/delete/",
                                    {"post": "yes"})
    assert response.status_code == 403
    assert Transfer.objects.filter(pk=transfer.pk).exists()


def test_an_operator_posts_a_reversal_once(operator_client, make_org):
    org = make_org()
    grant = grant_post(organization_id=org.pk, amount=900, reason="mistake")
    for _ in range(2):  # a double submit reverses once
        response = operator_client.post(
            "/admin/banking/transfer/",
            {"action": "post_reversal", "_selected_action": [grant.pk]},
            follow=True,
        )
        assert response.status_code == 200
    assert Transfer.objects.filter(reverses=grant).count() == 1
    assert wallet_get(organization_id=org.pk).available == 0


def test_the_ledger_health_page_runs_the_invariant_check(operator_client, make_org):
    make_org(tokens=5)
    page = operator_client.get("/admin/ledger-health/")
    assert page.status_code == 200
    assert b"Ledger ok" in page.content


def test_freeze_and_unfreeze_actions(operator_client, make_org):
    org = make_org()
    operator_client.post("/admin/banking/organization/",
                         {"action": "freeze", "_selected_action": [org.pk]})
    assert Organization.objects.get(pk=org.pk).status == "frozen"
    operator_client.post("/admin/banking/organization/",
                         {"action": "unfreeze", "_selected_action": [org.pk]})
    assert Organization.objects.get(pk=org.pk).status == "active"


def test_the_ledger_health_page_is_for_staff_only(client, db):
    response = client.get("/admin/ledger-health/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_the_admin_index_shows_tokens_in_circulation_held_and_owed(operator_client, make_org):
    from banking.services.holds import hold_place

    org = make_org(tokens=1_000)
    make_org(tokens=234)
    hold_place(organization_id=org.pk, amount=100, reference="r", idempotency_key="dash")
    page = operator_client.get("/admin/")
    assert page.status_code == 200
    panels = dict(page.context["dashboard_panels"])
    ledger = dict(panels["Ledger"])
    assert ledger["Tokens in circulation (wallets + held)"] == 1_234
    assert ledger["Held"] == 100
    assert ledger["Owed to the bank (credit + debt)"] == 0
    assert ledger["System: Promotions"] == -1_234
    assert b"Ledger health" in page.content


def test_every_registered_model_has_a_working_change_list(operator_client, make_org):
    from django.contrib import admin

    make_org(tokens=5)
    for model in admin.site._registry:
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert operator_client.get(url).status_code == 200, url


def test_every_app_model_is_registered_in_the_admin(db):
    from django.apps import apps
    from django.contrib import admin

    ours = [m for app in ("banking", "scheduler", "marketplace")
            for m in apps.get_app_config(app).get_models()]
    inlined = {inline.model for model_admin in admin.site._registry.values()
               for inline in model_admin.inlines}
    missing = sorted(m.__name__ for m in ours
                     if m not in admin.site._registry and m not in inlined)
    assert missing == []
