from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from banking.models import ApiKey


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Per API key (per signed-in user, else per address), counted in the shared cache
    (Redis outside the embedded mode) so every web process sees the same count."""

    scope = "api_key"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.prefix}"
        elif request.user is not None and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
