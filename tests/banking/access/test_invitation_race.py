"""Two owners invite the same new address at the same moment (a double click, two tabs):
one open invitation comes of it and neither request fails (update_or_create retries the
read when the other insert wins the unique constraint)."""

import pytest
from django.contrib.auth.models import User
from django.db import connection

from banking.models import Invitation
from banking.services.customers import member_invite, membership_add
from tests.concurrency import run_threads


@pytest.mark.django_db(transaction=True)
@pytest.mark.xdist_group("pg-concurrency")
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL locks")
def test_simultaneous_invites_of_one_address_make_one_invitation(make_org) -> None:
    company = make_org("Racing Invites Ltd")
    owners = []
    for n in range(8):
        user = User.objects.create_user(username=f"owner{n}@race.example",
                                        email=f"owner{n}@race.example", password="pw-Secret-123")
        membership_add(organization_id=company.pk, user=user, role="owner")
        owners.append(user.pk)

    results = run_threads(8, lambda i: member_invite(
        organization_id=company.pk, invited_by_id=owners[i], email="New.Hire@Race.example"))

    assert [r for r in results if isinstance(r, BaseException)] == []
    [invitation] = Invitation.objects.filter(organization=company)
    assert invitation.email == "new.hire@race.example"
    assert invitation.accepted_at is None
    assert not User.objects.filter(email__iexact="new.hire@race.example").exists()
