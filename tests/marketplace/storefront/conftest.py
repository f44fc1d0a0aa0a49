"""Storefront view tests: members of organizations, signed in with the test client."""

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client

from banking.models import Membership, Organization
from banking.services.customers import membership_add


@pytest.fixture
def make_member(db: None) -> Callable[..., User]:
    counter = {"n": 0}

    def make(organization: Organization, role: str = Membership.Role.OWNER,
             email: str | None = None) -> User:
        counter["n"] += 1
        email = email or f"user{counter['n']}-{organization.pk}@example.com"
        user = User.objects.create_user(username=email, email=email, password="pw-Secret-123")
        membership_add(organization_id=organization.pk, user=user, role=role)
        return user

    return make


@pytest.fixture
def client_for(make_member: Callable[..., User]) -> Callable[..., Client]:
    """A test client signed in as a new member of `organization`."""

    def make(organization: Organization, role: str = Membership.Role.OWNER) -> Client:
        client = Client()
        client.force_login(make_member(organization, role))
        return client

    return make


@pytest.fixture
def owner_client(org: Organization, client_for: Callable[..., Client]) -> Client:
    return client_for(org)
