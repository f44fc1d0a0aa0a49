"""The organization's customer at the payment provider."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from banking.gateway import get_gateway
from banking.models import Organization, StripeCustomer
from banking.services.payments.provider import gateway_call
from core.errors import NotFound


def stripe_customer_ensure(*, organization_id: int) -> str:
    """The organization's customer id at the provider, created on first use. Called with
    no transaction open: the provider call happens outside any lock."""
    found = (
        StripeCustomer.objects.filter(organization_id=organization_id)
        .values_list("customer_id", flat=True)
        .first()
    )
    if found is not None:
        return found
    org = Organization.objects.filter(pk=organization_id).first()
    if org is None:
        raise NotFound("Organization not found.")
    customer_id = gateway_call(
        lambda: get_gateway().customer_create(
            name=org.name,
            organization_id=str(org.pk),
            idempotency_key=f"customer:org{org.pk}",
        )
    )
    try:
        with transaction.atomic():
            StripeCustomer.objects.create(organization_id=org.pk, customer_id=customer_id)
    except IntegrityError:
        # A concurrent first top-up won; its customer is the one we keep.
        return StripeCustomer.objects.get(organization_id=org.pk).customer_id
    return customer_id
