"""The address a request came from, as audit rows and API keys' last use record it."""

import ipaddress
from typing import Any


def client_address(request: Any) -> str | None:
    """REMOTE_ADDR when it is an IP address (the deployment's proxy passes the client's
    on; a forwarded header is the client's own claim and is not trusted here)."""
    raw = str(getattr(request, "META", {}).get("REMOTE_ADDR") or "")
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return None
