"""The standing rule in its two forms, the check a service asks and the filter other apps
apply to their rows (scheduler's nodes), agree on every organization."""

import itertools

import pytest

from banking.models import Organization
from banking.standing import Act, organization_assert_may_act, organization_may_act_q
from core.errors import DomainError

pytestmark = pytest.mark.django_db


def test_the_filter_keeps_exactly_the_organizations_the_check_lets_act():
    orgs = [
        Organization.objects.create(name=f"{status}-{approved}", status=status,
                                    is_approved=approved, is_provider=True)
        for status, approved in itertools.product(Organization.Status.values, (True, False))
    ]
    may_act = set()
    for org in orgs:
        try:
            organization_assert_may_act(org.pk, Act.NODE_WORK)
        except DomainError:
            continue
        may_act.add(org.pk)

    filtered = set(Organization.objects.filter(organization_may_act_q())
                   .values_list("pk", flat=True))

    assert filtered == may_act
    assert sorted(Organization.objects.filter(pk__in=may_act).values_list("name", flat=True)
                  ) == ["active-True", "delinquent-True"]
