"""A transfer's request hash is what idempotency replays are compared with, and stored
transfers keep theirs: the hand-written form must hash exactly the text json.dumps made."""

import hashlib
import json

from hypothesis import given
from hypothesis import strategies as st

from banking.models.ledger import TransferKind
from banking.services.ledger import Leg, TransferSpec


def _json_dumps_hash(spec: TransferSpec) -> str:
    body = {
        "kind": str(spec.kind),
        "legs": sorted((leg.account_id, leg.amount) for leg in spec.legs),
        "reference": spec.reference,
        "reverses": spec.reverses_id,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _balanced(legs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The legs with one more that makes them sum to zero, as a valid spec's must."""
    total = sum(n for _, n in legs)
    return [*legs, (legs[0][0] + 1, -total)] if total else legs


@given(
    kind=st.sampled_from(list(TransferKind)),
    legs=st.lists(
        st.tuples(st.integers(1, 10**12), st.integers(-(10**15), 10**15).filter(bool)),
        min_size=1, max_size=5,
    ).map(_balanced),
    reference=st.text(max_size=40),
    reverses=st.none() | st.integers(1, 10**12),
)
def test_the_request_hash_is_the_json_dumps_hash(kind, legs, reference, reverses):
    spec = TransferSpec(kind=kind, idempotency_key="k", reference=reference,
                        legs=tuple(Leg(a, n) for a, n in legs), reverses_id=reverses)

    assert spec.request_hash == _json_dumps_hash(spec)
