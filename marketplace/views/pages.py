"""The home page."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from marketplace.account_adapter import landing_url


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(landing_url(request))
    return render(request, "marketplace/home.html")
