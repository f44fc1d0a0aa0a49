"""Sign-up, members, switching organization."""

from typing import Any, cast

from allauth.account.views import SignupView
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from banking.invitation_tokens import invitation_id_from_token
from banking.models import Membership
from banking.selectors import (
    invitation_list,
    invitation_open_get,
    membership_list,
    user_membership_list,
)
from banking.services.customers import (
    member_invite,
    member_remove,
    member_role_change,
    organization_require_mfa_set,
    organization_signup,
)
from core.errors import DomainError
from marketplace.emails import member_invite_email_send
from marketplace.forms import (
    MemberInviteForm,
    MemberRoleForm,
    OrganizationSwitchForm,
    SignupForm,
    apply_domain_error,
)
from marketplace.invitation_forms import InvitationSignupForm
from marketplace.views.base import OrganizationRequest, can_manage_members, organization_required


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("store:wallet")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            membership = organization_signup(
                name=form.cleaned_data["organization_name"],
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                is_buyer=form.is_buyer,
                is_provider=form.is_provider,
            )
        except DomainError as exc:
            apply_domain_error(form, exc, field_map={"name": "organization_name"})
        else:
            login(request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
            request.session["organization_id"] = membership.organization_id
            messages.success(request, f"Welcome to Suanli, {membership.organization.name}.")
            if membership.organization.is_provider:
                messages.info(
                    request,
                    "An operator reviews new providers; your nodes go live once approved.",
                )
            if membership.organization.is_provider and not membership.organization.is_buyer:
                return redirect("store:provider")
            return redirect("store:wallet")
    return render(request, "marketplace/accounts/signup.html", {"form": form})


@organization_required
def members(request: OrganizationRequest) -> HttpResponse:
    manage = can_manage_members(request.membership)
    form = MemberInviteForm(request.POST or None) if manage else None
    if request.method == "POST":
        if form is None:
            messages.error(request, "Only owners and admins may add members.")
            return redirect("store:members")
        if form.is_valid():
            try:
                with transaction.atomic():
                    invite = member_invite(
                        organization_id=request.organization.pk,
                        invited_by_id=request.user.pk,
                        email=form.cleaned_data["email"],
                        role=form.cleaned_data["role"],
                    )
                    member_invite_email_send(
                        request, invite=invite, organization=request.organization,
                        invited_by=request.user,
                    )
            except DomainError as exc:
                apply_domain_error(form, exc)
            else:
                role = Membership.Role(invite.role).label.lower()
                messages.success(
                    request,
                    f"{invite.email} was invited as {role}; we emailed them a link. They "
                    "join once they confirm their address."
                    if invite.invitation is not None else
                    f"{invite.email} was added as {role}; we emailed them a link to sign in.",
                )
                return redirect("store:members")
    return render(
        request,
        "marketplace/accounts/members.html",
        {
            "members": membership_list(organization_id=request.organization.pk),
            "invitations": invitation_list(organization_id=request.organization.pk),
            "form": form,
            "nav": "members",
            "manage": manage,
            "roles": Membership.Role.choices,
        },
    )


class InvitationAcceptView(SignupView):
    """The invitation's link: allauth's sign-up for the invited address alone, whose
    password the invitee chooses; allauth then sends the confirmation, and the membership
    is made when it is followed (marketplace.account_adapter). A forged, expired or used
    link is a 404 that says which."""

    template_name = "marketplace/accounts/invitation.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        invitation_id = invitation_id_from_token(kwargs["token"])
        invitation = (invitation_open_get(invitation_id=invitation_id)
                      if invitation_id is not None else None)
        if invitation is None:
            return render(request, "marketplace/accounts/invitation_invalid.html", status=404)
        self.invitation = invitation
        return super().dispatch(request, *args, **kwargs)

    def get_form_class(self) -> type[InvitationSignupForm]:
        return InvitationSignupForm

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "email": self.invitation.email}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "invitation": self.invitation}


invitation_accept = InvitationAcceptView.as_view()


@organization_required
@require_POST
def member_change(request: OrganizationRequest, user_id: int) -> HttpResponse:
    """Change a member's role, or remove them (`remove=1`); their services say who may."""
    try:
        if request.POST.get("remove") == "1":
            removed = member_remove(organization_id=request.organization.pk,
                                    actor_id=request.user.pk, user_id=user_id)
            messages.success(request, f"{removed.user.email or removed.user.username} was "
                                      "removed; the API keys they created are revoked.")
        else:
            form = MemberRoleForm(request.POST)
            if not form.is_valid():
                messages.error(request, "Pick a role.")
                return redirect("store:members")
            changed = member_role_change(organization_id=request.organization.pk,
                                         actor_id=request.user.pk, user_id=user_id,
                                         role=form.cleaned_data["role"])
            messages.success(request, f"{changed.user.email or changed.user.username} is "
                                      f"now {changed.get_role_display().lower()}.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("store:members")


@organization_required
@require_POST
def organization_security(request: OrganizationRequest) -> HttpResponse:
    """Owners turn "every member needs a second factor" on or off."""
    try:
        org = organization_require_mfa_set(organization_id=request.organization.pk,
                                           actor_id=request.user.pk,
                                           required=request.POST.get("require_mfa") == "1")
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Every member now needs a second factor to act."
                         if org.require_mfa else "A second factor is no longer required "
                         "of every member.")
    return redirect("store:members")


@login_required
@require_POST
def organization_switch(request: HttpRequest) -> HttpResponse:
    form = OrganizationSwitchForm(request.POST)
    if form.is_valid():
        wanted = form.cleaned_data["organization_id"]
        membership = user_membership_list(user_id=cast(int, request.user.pk)).filter(
            organization_id=wanted
        ).first()
        if membership is not None:
            request.session["organization_id"] = membership.organization_id
            messages.success(request, f"You are now acting for {membership.organization.name}.")
        else:
            messages.error(request, "You are not a member of that organization.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("store:wallet")
    return redirect(target)
