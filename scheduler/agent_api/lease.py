"""The agent's lease read: what its node must run and stop. One function answers it,
`lease_answer`, behind the same three doors as the heartbeat (the DRF view, and the
middlewares of scheduler.agent_api.doors): after a placement every node that got work
reads its lease within a beat, and a large fleet must not need Django's request cycle
for each (on the agents' server that cycle ran leases at ~250 a second on two cores)."""

from scheduler.agent_api.answers import Answer
from scheduler.agent_api.rate_limit import node_call_admitted
from scheduler.agent_api.serializers import LeaseAssignmentSerializer
from scheduler.services.agent import node_lease

# LeaseOutputSerializer's field for the time, bound once: the rest of a lease is plain
# JSON already.
_EXPIRES = LeaseAssignmentSerializer().fields["lease_expires_at"]


def lease_answer(authorization: str) -> Answer:
    """As DRF would answer it with NodeTokenAuthentication, IsNode and NodeRateThrottle
    (the calls' shared rate per node): 401 without a valid token of a node not disabled,
    429 over the rate, else the lease."""
    node_id = node_call_admitted(authorization)
    if isinstance(node_id, Answer):
        return node_id
    lease = node_lease(node_id=node_id)
    return Answer(200, {
        "assignments": [
            {"id": r.id, "job_id": r.job_id, "gpu_count": r.gpu_count, "spec": r.spec,
             "max_duration_s": r.max_duration_s,
             "lease_expires_at": _EXPIRES.to_representation(r.lease_expires_at)}
            for r in lease.runs
        ],
        "kill": lease.kill,
    })
