"""Which nodes may be given work: banking's standing rule (`banking.services.standing`)
applied to a node's provider, as a filter every node read of placement and the catalog
uses, so a frozen or unapproved provider's nodes get no work and are not shown."""

from django.db.models import Q

from banking.models import Organization


def node_may_work() -> Q:
    return Q(provider__is_approved=True) & ~Q(provider__status=Organization.Status.FROZEN)
