"""The audit trail: a row for each security-relevant act, with actor, organization,
client address, request id and time; refused UPDATE and DELETE by the database; read by
owners on a page and as CSV, by operators in the admin."""

import csv
import io
from datetime import date

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.db import DatabaseError, connection, transaction
from django.test import Client, RequestFactory

from banking.models import AuditEvent, Organization, Payout
from banking.models.ledger import AccountPurpose
from banking.services.customers import (
    api_key_issue,
    api_key_revoke,
    member_invite,
    member_remove,
    member_role_change,
    membership_add,
    organization_approve,
    organization_set_status,
)
from banking.services.ledger import grant_post, system_account, transfer_reverse
from banking.services.lending import credit_line_set, loan_originate, loan_write_off
from banking.services.payouts import payout_account_set, payout_approve, payout_reject
from banking.services.payouts import payout_request as payout_request_service
from tests.earnings import earn


@pytest.fixture
def company(make_org):
    return make_org("Audited Ltd", provider=True, buyer=True)


@pytest.fixture
def owner(company) -> User:
    user = User.objects.create_user(username="boss@audited.example",
                                    email="boss@audited.example", password="pw-Secret-123")
    membership_add(organization_id=company.pk, user=user, role="owner")
    return user


def _rows(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def test_a_key_created_on_the_storefront_is_recorded_with_who_where_and_which_request(
        company, owner):
    client = Client()
    client.force_login(owner)

    client.post("/api-keys/", {"name": "ci"}, REMOTE_ADDR="203.0.113.5")

    [row] = _rows("api_key.created")
    assert row.organization_id == company.pk
    assert row.actor_id == owner.pk
    assert row.actor == "boss@audited.example"
    assert row.client_address == "203.0.113.5"
    assert len(row.request_id) == 32
    assert row.detail["scopes"] == ["read", "jobs", "blocks", "billing", "provider", "payouts"]
    assert row.created_at is not None


def test_key_revoked_and_member_acts_are_recorded(company, owner):
    key = api_key_issue(organization_id=company.pk, created_by_id=owner.pk)
    api_key_revoke(organization_id=company.pk, api_key_id=key.api_key.pk, actor_id=owner.pk)
    api_key_revoke(organization_id=company.pk, api_key_id=key.api_key.pk, actor_id=owner.pk)
    invite = member_invite(organization_id=company.pk, invited_by_id=owner.pk,
                           email="dev@audited.example", role="developer")
    dev_id = invite.membership.user_id
    dev_key = api_key_issue(organization_id=company.pk, created_by_id=dev_id)
    member_role_change(organization_id=company.pk, actor_id=owner.pk, user_id=dev_id,
                       role="viewer")
    member_remove(organization_id=company.pk, actor_id=owner.pk, user_id=dev_id)

    assert [r.target for r in _rows("api_key.revoked")] == [f"api_key:{key.api_key.prefix}"]
    assert [(r.actor_id, r.detail["role"]) for r in _rows("member.invited")] == [
        (owner.pk, "developer")]
    assert [r.detail for r in _rows("member.role_changed")] == [
        {"from": "developer", "to": "viewer"}]
    [removed] = _rows("member.removed")
    assert removed.detail == {"role": "viewer", "keys_revoked": [dev_key.api_key.prefix]}
    assert removed.actor == "boss@audited.example"
    assert removed.client_address is None and removed.request_id == ""  # not a request


def test_payout_acts_are_recorded(company, settings):
    settings.PAYOUT_AUTO_APPROVE_BELOW_TOKENS = 0
    earn(company.pk, 40_000_000)  # only earnings are paid out, never grants
    operator = User.objects.create_user(username="ops", email="ops@suanli.example")

    payout_account_set(organization_id=company.pk, stripe_account_id="acct_123")
    first = payout_request_service(organization_id=company.pk, tokens=10_000_000)
    second = payout_request_service(organization_id=company.pk, tokens=10_000_000)
    payout_approve(payout_id=first.pk, approved_by_id=operator.pk)
    payout_reject(payout_id=second.pk, reason="looks odd")

    assert [r.detail for r in _rows("payout_account.changed")] == [
        {"stripe_account_id": "acct_123", "auto_payout_threshold": None}]
    assert [r.target for r in _rows("payout.requested")] == [
        f"payout:{first.pk}", f"payout:{second.pk}"]
    assert [(r.target, r.actor) for r in _rows("payout.approved")] == [
        (f"payout:{first.pk}", "ops@suanli.example")]
    assert [r.detail for r in _rows("payout.rejected")] == [{"reason": "looks odd"}]
    assert Payout.objects.get(pk=second.pk).status == "rejected"


def test_operator_acts_on_organizations_nodes_credit_and_the_ledger_are_recorded(
        make_org, company, h100):
    from scheduler.services.nodes import node_approve, node_register

    pending = make_org("Pending GPUs", provider=True, buyer=False)
    Organization.objects.filter(pk=pending.pk).update(is_approved=False)
    organization_approve(organization_id=pending.pk)
    organization_set_status(organization_id=company.pk, status="frozen")
    organization_set_status(organization_id=company.pk, status="frozen")
    organization_set_status(organization_id=company.pk, status="active")
    node = node_register(provider_id=pending.pk, name="n1", gpu_class="H100-80GB",
                         gpu_count=8, region="eu-west").node
    node_approve(node_id=node.pk)
    credit_line_set(organization_id=company.pk, limit=5_000_000, apr_bps=1200,
                    max_term_months=12)
    loan = loan_originate(organization_id=company.pk, principal=1_000_000, term_months=3,
                          reference="test", idempotency_key="audit-loan",
                          pay_to_account_id=system_account(AccountPurpose.BANK_CAPACITY).pk,
                          first_due=date(2099, 1, 1))
    loan_write_off(loan_id=loan.pk, memo="gone")
    grant = grant_post(organization_id=company.pk, amount=500, reason="oops")
    reversal = transfer_reverse(transfer_id=grant.pk, memo="granted by mistake")

    assert [r.organization_id for r in _rows("organization.approved")] == [pending.pk]
    assert [r.detail for r in _rows("organization.status_changed")] == [
        {"from": "active", "to": "frozen"}, {"from": "frozen", "to": "active"}]
    assert [r.target for r in _rows("node.approved")] == [f"node:{node.pk}"]
    assert [r.detail for r in _rows("credit_line.set")] == [
        {"limit": 5_000_000, "apr_bps": 1200, "max_term_months": 12}]
    assert [r.target for r in _rows("loan.written_off")] == [f"loan:{loan.pk}"]
    assert [(r.target, r.detail["reversal_id"]) for r in _rows("transfer.reversed")] == [
        (f"transfer:{grant.pk}", reversal.pk)]


def test_a_change_in_the_admin_is_recorded(company):
    operator = User.objects.create_superuser("root", "root@suanli.example", "pw-Secret-123")
    request = RequestFactory().post("/admin/")
    request.user = operator
    model_admin = admin.site._registry[Organization]

    model_admin.log_change(request, company, [{"changed": {"fields": ["Status"]}}])

    [row] = _rows("admin.change")
    assert row.actor == "root@suanli.example"
    assert row.target == f"organization:{company.pk}"
    assert row.detail == {"object": "Audited Ltd", "flag": "changed",
                          "message": "Changed Status."}


def test_the_database_refuses_to_change_or_delete_the_trail(company, owner):
    api_key_issue(organization_id=company.pk, created_by_id=owner.pk)
    table = AuditEvent._meta.db_table

    for statement in (f"UPDATE {table} SET actor = 'nobody'", f"DELETE FROM {table}"):
        with pytest.raises(DatabaseError, match="Cannot"), transaction.atomic(), \
                connection.cursor() as cursor:
            cursor.execute(statement)

    assert [r.actor for r in AuditEvent.objects.all()] == ["boss@audited.example"]


def test_owners_read_the_trail_and_its_csv_others_do_not(company, owner):
    admin_user = User.objects.create_user(username="a@audited.example",
                                          email="a@audited.example")
    membership_add(organization_id=company.pk, user=admin_user, role="admin")
    api_key_issue(organization_id=company.pk, created_by_id=owner.pk, name="=cmd()")
    other = Organization.objects.create(name="Elsewhere")
    api_key_issue(organization_id=other.pk)
    owner_client, admin_client = Client(), Client()
    owner_client.force_login(owner)
    admin_client.force_login(admin_user)

    page = owner_client.get("/audit/")
    exported = owner_client.get("/audit.csv")
    refused = admin_client.get("/audit/")

    assert page.status_code == 200
    assert page.content.decode().count('data-action="api_key.created"') == 1
    body = b"".join(exported.streaming_content).decode()  # type: ignore[attr-defined]
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0][:3] == ["id", "created_at", "action"]
    assert [r[2] for r in rows[1:]] == ["api_key.created"]
    assert '"name": "=cmd()"' in rows[1][9]
    assert refused.status_code == 403


def test_operators_read_and_export_the_trail_in_the_admin(company, owner):
    api_key_issue(organization_id=company.pk, created_by_id=owner.pk)
    operator = User.objects.create_superuser("root", "root@suanli.example", "pw-Secret-123")
    client = Client()
    client.force_login(operator)
    row = AuditEvent.objects.get()

    listing = client.get("/admin/banking/auditevent/")
    exported = client.post("/admin/banking/auditevent/",
                           {"action": "export_csv", "_selected_action": [row.pk]})

    assert listing.status_code == 200
    assert "api_key.created" in listing.content.decode() or "API key created" in (
        listing.content.decode())
    assert exported["Content-Type"] == "text/csv"
    body = b"".join(exported.streaming_content).decode()  # type: ignore[attr-defined]
    lines = body.splitlines()
    assert len(lines) == 2
    assert lines[1].startswith(f"{row.pk},")
