from rest_framework.request import Request

from core.errors import InvalidInput


def idempotency_key_from(request: Request, *, scope: str) -> str | None:
    """The client's `Idempotency-Key`, namespaced by organization and operation so that
    two organizations (or two operations) never collide on one key."""
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        return None
    raw = raw.strip()
    if not raw or len(raw) > 128 or not raw.isprintable():
        raise InvalidInput(
            "Idempotency-Key must be 1 to 128 printable characters.",
            fields={"Idempotency-Key": ["1 to 128 printable characters."]},
        )
    return f"{scope}:org{request.organization.pk}:{raw}"  # type: ignore[attr-defined]
