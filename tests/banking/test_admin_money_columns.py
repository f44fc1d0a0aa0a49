"""Money in the admin's lists reads in tokens and dollars, "8,300,000 tokens (≈ $2.49)",
from the one formatting helper (banking.fiat_display) at the current token price, and
the column still sorts by the amount."""

import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.db.models import Model
from django.urls import reverse

from banking.models import Account
from banking.models.ledger import AccountPurpose


@pytest.fixture
def operator_client(client, db):
    User.objects.create_superuser("operator", "op@example.com", "pw-operator-1")
    client.login(username="operator", password="pw-operator-1")
    return client


def _money_admins() -> list[tuple[type[Model], admin.ModelAdmin]]:
    return [(model, model_admin) for model, model_admin in admin.site._registry.items()
            if any(getattr(c, "__name__", "").endswith("_with_usd")
                   for c in model_admin.list_display)]


def test_a_wallets_balance_reads_in_tokens_and_dollars(operator_client, make_org):
    org = make_org(tokens=8_300_000)
    page = operator_client.get("/admin/banking/account/?q=" + org.name).content.decode()
    wallet = Account.objects.get(organization=org, purpose=AccountPurpose.WALLET)
    row = re.search(rf'<tr>.*?/admin/banking/account/{wallet.pk}/change/.*?</tr>', page, re.S)
    assert row is not None
    assert '<td class="field-balance_with_usd">8,300,000 tokens (\u2248 $2.49)</td>' in row[0]
    assert '<th scope="col" class="sortable column-balance_with_usd">' in page


def test_gpu_class_rates_read_in_dollars_per_gpu_hour(operator_client):
    page = operator_client.get("/admin/scheduler/gpuclass/?q=H100-80GB").content.decode()
    assert ('<td class="field-on_demand_rate_with_usd">8,300,000 tokens (\u2248 $2.49)</td>'
            in page)


def test_a_money_column_sorts_by_its_amount(operator_client, make_org):
    small, large = make_org(tokens=1_000_000), make_org(tokens=5_000_000)
    page = operator_client.get("/admin/banking/account/?purpose__exact=wallet&o=-4")
    text = page.content.decode()
    assert page.status_code == 200
    assert text.index(f">{large.name}<") < text.index(f">{small.name}<")


def test_every_list_with_money_columns_loads(operator_client, make_org):
    make_org(tokens=1_000)
    admins = _money_admins()
    assert len(admins) >= 20
    for model, _ in admins:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert operator_client.get(url).status_code == 200, url
