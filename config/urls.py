from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from banking.webhooks import stripe_webhook
from core.observability import healthz, metrics

api_v1: list[URLPattern | URLResolver] = [
    path("", include("banking.api.urls")),
    path("", include("scheduler.api.urls")),
    path("", include("marketplace.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    # The split view serves its script as a file: no inline script, as the CSP requires.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("webhooks/stripe/", stripe_webhook, name="stripe-webhook"),
    # allauth's pages (email, password, two-factor); login and sign-up are the storefront's
    path("accounts/", include("allauth.urls")),
    # The storefront last: its pages never shadow the API or the admin.
    path("", include("marketplace.urls")),
]
