"""Node tokens as agents present them, and the heartbeat rate limit a token is held to:
plain data below the node services and the heartbeat buffer, which both build on it; and
the guard every lookup of a token goes through, whichever door the agent came in by."""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from core.credential_guard import credential_lookup

T = TypeVar("T")

TOKEN_PREFIX = "nt"


def token_hash(token: str) -> str:
    """What is stored of a node token: its SHA-256, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NodeToken:
    """A node token as the agent presents it, split for lookup: the visible prefix finds
    the row, the hash proves the secret."""

    prefix: str
    hash: str

    @classmethod
    def parse(cls, raw: str) -> "NodeToken | None":
        token = raw.strip()
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
            return None
        return cls(prefix=parts[1], hash=token_hash(token))


@dataclass(frozen=True)
class BeatLimit:
    """At most `beats` heartbeats per node in each fixed window of `window_s` seconds."""

    beats: int
    window_s: int


def node_token_lookup(token: NodeToken, lookup: Callable[[], T | None]) -> T | None:
    """What `lookup` finds in the database for `token`, behind core.credential_guard: a
    token found unknown is refused without a query for a while, and an address that
    presents too many unknown ones is refused any."""
    return credential_lookup("node", token.hash, lookup)
