"""Storefront emails. Sent after the transaction that caused them commits."""

from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse

from banking.invitation_tokens import invitation_token
from banking.models import Organization
from banking.services.customers import MemberInvite


def member_invite_email_send(
    request: HttpRequest, *, invite: MemberInvite, organization: Organization, invited_by: User,
) -> None:
    """An open invitation for a newcomer links to its sign-up (allauth's, with its own
    password and then a confirmation of the address); an existing account is told to sign
    in (where, if it has not confirmed the address, allauth sends the confirmation)."""
    if invite.invitation is not None and not invite.account_exists:
        link = reverse("store:invitation_accept",
                       kwargs={"token": invitation_token(invite.invitation.pk)})
    else:
        link = reverse("store:login")
    context = {
        "organization": organization,
        "invited_by": invited_by,
        "link": request.build_absolute_uri(link),
        "new_user": invite.invitation is not None and not invite.account_exists,
    }
    subject = f"You have been added to {organization.name} on Suanli"
    body = render_to_string("marketplace/emails/member_invite.txt", context)
    recipient = invite.email
    transaction.on_commit(
        lambda: send_mail(subject, body, None, [recipient], fail_silently=False)
    )
