"""The home page."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from banking.api.authentication import request_organization


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        organization = request_organization(request)
        if organization is not None and organization.is_provider and not organization.is_buyer:
            return redirect("store:provider")
        return redirect("store:wallet")
    return render(request, "marketplace/home.html")
