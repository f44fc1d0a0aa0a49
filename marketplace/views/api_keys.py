"""API keys: create (the secret shown once), list, revoke."""

from datetime import timedelta

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from banking.roles import role_scopes
from banking.selectors import api_key_list
from banking.services.customers import api_key_issue, api_key_revoke
from core.errors import DomainError
from marketplace.forms import ApiKeyCreateForm, apply_domain_error
from marketplace.views.base import OrganizationRequest, found_or_404, organization_required

# The secret waits in the session for exactly one page view, then is gone.
SECRET_SESSION_KEY = "storefront_new_api_key"


@organization_required
@never_cache
def api_keys(request: OrganizationRequest) -> HttpResponse:
    form = ApiKeyCreateForm(request.POST or None,
                            allowed_scopes=role_scopes(request.membership.role))
    if request.method == "POST" and form.is_valid():
        days = form.cleaned_data["expires_in_days"]
        try:
            issued = api_key_issue(
                organization_id=request.organization.pk, name=form.cleaned_data["name"],
                created_by_id=request.user.pk, scopes=form.cleaned_data["scopes"] or None,
                expires_at=timezone.now() + timedelta(days=days) if days else None,
            )
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            request.session[SECRET_SESSION_KEY] = {
                "id": issued.api_key.pk, "secret": issued.secret,
            }
            return redirect("store:api_key_created")
    return render(
        request,
        "marketplace/api_keys/list.html",
        {"nav": "api_keys", "keys": api_key_list(organization_id=request.organization.pk),
         "form": form},
    )


@organization_required
@never_cache
def api_key_created(request: OrganizationRequest) -> HttpResponse:
    shown = request.session.pop(SECRET_SESSION_KEY, None)
    if not shown:
        messages.info(request, "A key's secret is shown once only, when it is created.")
        return redirect("store:api_keys")
    key = api_key_list(organization_id=request.organization.pk).filter(pk=shown["id"]).first()
    if key is None:
        raise Http404("API key not found.")
    return render(
        request,
        "marketplace/api_keys/created.html",
        {"nav": "api_keys", "key": key, "secret": shown["secret"]},
    )


@organization_required
def api_key_revoke_view(request: OrganizationRequest, api_key_id: int) -> HttpResponse:
    """GET asks for confirmation, POST revokes. Another organization's key is a 404."""
    key = api_key_list(organization_id=request.organization.pk).filter(pk=api_key_id).first()
    if key is None:
        raise Http404("API key not found.")
    if request.method == "POST":
        try:
            found_or_404(lambda: api_key_revoke(
                organization_id=request.organization.pk, api_key_id=key.pk,
                actor_id=request.user.pk,
            ))
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("store:api_keys")
        messages.success(request, f"The key “{key.name}” ({key.prefix}…) was revoked.")
        return redirect("store:api_keys")
    return render(request, "marketplace/api_keys/revoke.html", {"nav": "api_keys", "key": key})
