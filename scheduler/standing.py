"""Which nodes may be given work: banking's standing rule
(`banking.standing.organization_may_act_q`) applied to a node's provider, as a filter
every node read of placement and the catalog uses, so a frozen or unapproved provider's
nodes get no work and are not shown."""

from django.db.models import Q

from banking.standing import organization_may_act_q


def node_may_work() -> Q:
    return organization_may_act_q("provider__")
