"""The Content-Security-Policy's one external origin: wherever Stripe.js is loaded from.

settings.CONTENT_SECURITY_POLICY allows this site only; the card Element's script, its
frames and its calls come from STRIPE_JS_URL's origin (Stripe's own hosts in production,
localstripe in tests), read per response because tests point it elsewhere at run time."""

from urllib.parse import urlsplit

from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

# Stripe.js served from js.stripe.com talks to these (Stripe's published CSP list).
STRIPE_ORIGINS = {
    "https://js.stripe.com": {
        "script-src": ["https://js.stripe.com"],
        "frame-src": ["https://js.stripe.com", "https://hooks.stripe.com"],
        "connect-src": ["https://api.stripe.com"],
    }
}


def stripe_directives(js_url: str) -> dict[str, list[str]]:
    parts = urlsplit(js_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return {}
    origin = f"{parts.scheme}://{parts.netloc}"
    return STRIPE_ORIGINS.get(
        origin, {"script-src": [origin], "frame-src": [origin], "connect-src": [origin]}
    )


class StorefrontCSPMiddleware(CSPMiddleware):
    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if not report_only:
            update = dict(parts.update or {})
            for directive, sources in stripe_directives(settings.STRIPE_JS_URL).items():
                update[directive] = [*update.get(directive, []), *sources]
            parts.update = update
        return parts
