"""The audit trail: services record each security-relevant act with `audit_record`, in
their own transaction (an act rolled back leaves no row). Who did it, from where and
under which request id come from the request being served (`AuditContextMiddleware`),
or are "system" for tasks and commands. Admin changes are recorded from the admin's own
log, so every admin action and edit is in the trail without the admin knowing it."""

import contextvars
from collections.abc import Callable
from typing import Any

from allauth.mfa.signals import authenticator_added, authenticator_removed
from django.contrib.admin.models import LogEntry
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from banking.models import AuditAction, AuditEvent
from core.client_address import client_address
from core.observability import request_id_var

_request_var: contextvars.ContextVar[HttpRequest | None] = contextvars.ContextVar(
    "audit_request", default=None
)


class AuditContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _request_var.set(request)
        try:
            return self.get_response(request)
        finally:
            _request_var.reset(token)


def _actor(request: HttpRequest | None, actor_id: int | None) -> tuple[int | None, str]:
    user: Any = getattr(request, "user", None) if request is not None else None
    api_key = getattr(user, "api_key", None)
    if api_key is not None:  # a call with an API key (banking.api.authentication)
        return api_key.created_by_id, f"key:{api_key.prefix}"
    if user is not None and getattr(user, "is_authenticated", False):
        return user.pk, user.email or user.username
    if actor_id is not None:
        from django.contrib.auth.models import User

        found = User.objects.filter(pk=actor_id).values_list("email", "username").first()
        return actor_id, (found[0] or found[1]) if found else f"user:{actor_id}"
    return None, "system"


def audit_record(
    *,
    action: AuditAction,
    organization_id: int | None,
    target: str = "",
    detail: dict[str, Any] | None = None,
    actor_id: int | None = None,
) -> AuditEvent:
    request = _request_var.get()
    who_id, who = _actor(request, actor_id)
    return AuditEvent.objects.create(
        action=action,
        organization_id=organization_id,
        actor_id=who_id if who_id is not None else actor_id,
        actor=who[:254],
        target=target[:120],
        client_address=client_address(request) if request is not None else None,
        request_id=request_id_var.get() if request is not None else "",
        detail=detail or {},
    )


@receiver(post_save, sender=LogEntry, dispatch_uid="banking.audit.admin_change")
def _admin_change(sender: type[LogEntry], instance: LogEntry, created: bool,
                  **_: Any) -> None:
    if not created:
        return
    audit_record(
        action=AuditAction.ADMIN_CHANGE,
        organization_id=None,
        target=f"{instance.content_type.model if instance.content_type else '?'}:"
               f"{instance.object_id or ''}",
        detail={"object": instance.object_repr[:200],
                "flag": {1: "added", 2: "changed", 3: "deleted"}.get(instance.action_flag, "?"),
                "message": instance.get_change_message()[:500]},
        actor_id=instance.user_id,
    )


@receiver(authenticator_added, dispatch_uid="banking.audit.mfa_added")
@receiver(authenticator_removed, dispatch_uid="banking.audit.mfa_removed")
def _second_factor_changed(sender: Any, signal: Any, user: Any, authenticator: Any,
                           **_: Any) -> None:
    from banking.models import Membership

    added = signal is authenticator_added
    for organization_id in Membership.objects.filter(user_id=user.pk).values_list(
        "organization_id", flat=True
    ):
        audit_record(
            action=AuditAction.MFA_ENABLED if added else AuditAction.MFA_DISABLED,
            organization_id=organization_id, target=f"user:{user.pk}", actor_id=user.pk,
            detail={"type": authenticator.type},
        )
