import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from banking.models import Organization
from banking.selectors import wallet_get
from banking.services.customers import api_key_authenticate


def test_create_organization_prints_one_json_line_with_a_working_key(db, capsys):
    call_command("create_organization", "Blue Whale GPU", "--provider")
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    data = json.loads(out[0])
    org = Organization.objects.get(pk=data["organization_id"])
    assert (org.name, org.is_buyer, org.is_provider) == ("Blue Whale GPU", True, True)
    key = api_key_authenticate(data["api_key"])
    assert key is not None and key.organization_id == org.pk


def test_grant_tokens_is_idempotent_with_a_key(make_org, capsys):
    org = make_org("Grantee")
    for _ in range(2):
        call_command("grant_tokens", "Grantee", "5000", "--reason", "launch promo", "--key", "L1")
    assert wallet_get(organization_id=org.pk).available == 5_000
    call_command("grant_tokens", str(org.pk), "7", "--reason", "again")
    assert wallet_get(organization_id=org.pk).available == 5_007


def test_grant_tokens_refuses_bad_input_and_posts_nothing(make_org):
    org = make_org("Grantee2")
    with pytest.raises(CommandError, match="invalid"):
        call_command("grant_tokens", "Grantee2", "0", "--reason", "zero")
    with pytest.raises(CommandError, match="no organization"):
        call_command("grant_tokens", "Nobody", "10", "--reason", "x")
    assert wallet_get(organization_id=org.pk).available == 0
