"""Storefront emails. Sent after the transaction that caused them commits."""

from django.contrib.auth.models import User
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from banking.models import Organization


def password_set_link(request: HttpRequest, user: User) -> str:
    """An absolute one-time link to set a password (Django's password-reset token)."""
    path = reverse(
        "store:password_reset_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    return request.build_absolute_uri(path)


def member_invite_email_send(
    request: HttpRequest, *, user: User, organization: Organization, invited_by: User,
    new_user: bool,
) -> None:
    context = {
        "organization": organization,
        "invited_by": invited_by,
        "link": password_set_link(request, user) if new_user
        else request.build_absolute_uri(reverse("store:login")),
        "new_user": new_user,
    }
    subject = f"You have been added to {organization.name} on Suanli"
    body = render_to_string("marketplace/emails/member_invite.txt", context)
    recipient = user.email
    transaction.on_commit(
        lambda: send_mail(subject, body, None, [recipient], fail_silently=False)
    )
