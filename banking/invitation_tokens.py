"""The link an invitation is sent as: its id signed with the site's secret and a time, so
only the emailed link opens it, and only for a while."""

from django.conf import settings
from django.core import signing

_SALT = "banking.invitation"
# A signed id is short; anything longer than this is not one of ours.
TOKEN_MAX_LENGTH = 200


def invitation_token(invitation_id: int) -> str:
    return signing.TimestampSigner(salt=_SALT).sign(str(invitation_id))


def invitation_id_from_token(token: str) -> int | None:
    """The invitation's id, or None for a forged, altered, overlong or expired token."""
    if len(token) > TOKEN_MAX_LENGTH:
        return None
    try:
        value = signing.TimestampSigner(salt=_SALT).unsign(
            token, max_age=settings.INVITATION_MAX_AGE_S)
    except signing.BadSignature:
        return None
    return int(value) if value.isdigit() else None
