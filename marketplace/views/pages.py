"""The home page and the pages other parts of the product will fill in."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from marketplace.views.base import OrganizationRequest, organization_required

# Pages whose features are being built elsewhere (scheduler, blocks, lending, provider):
# each is a named URL and a nav entry already, so the layout does not change when they
# land. Replace the view in `marketplace/urls.py` with the real one.
COMING = {
    "catalog": ("Catalog", "GPU classes, live prices and the largest job you can place now."),
    "jobs": ("Jobs", "Submit jobs, watch them run, see what each one cost."),
    "blocks": ("Compute blocks", "Reserve GPUs for a window, paid now or financed."),
    "loans": ("Loans", "Your credit line, financed blocks and their schedules."),
    "provider": ("Provider", "Your nodes, deposits in the bank, yield, advances and payouts."),
}


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("store:wallet")
    return render(request, "marketplace/home.html")


def coming_soon(nav: str) -> Callable[..., HttpResponse]:
    title, blurb = COMING[nav]

    @organization_required
    def view(request: OrganizationRequest) -> HttpResponse:
        return render(
            request,
            "marketplace/coming_soon.html",
            {"nav": nav, "page_title": title, "blurb": blurb},
        )

    view.__name__ = f"{nav}_coming_soon"
    return view
