"""Organizations, their members and their API keys."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from banking.models import Account, ApiKey, Invitation, Membership, Organization
from banking.services.customers import organization_approve, organization_set_status
from banking.standing import organization_block_reasons
from core.read_only_admin import ReadOnlyAdmin


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class AccountInline(admin.TabularInline):
    model = Account
    extra = 0
    fields = readonly_fields = ("purpose", "balance", "floor")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "is_buyer", "is_provider", "is_approved", "status", "blocked_because",
                    "created_at"]
    list_filter = ["status", "is_buyer", "is_provider", "is_approved"]
    search_fields = ["name"]
    readonly_fields = ["status", "blocked_because", "created_at", "updated_at"]
    inlines = [MembershipInline, AccountInline]
    actions = ["approve", "freeze", "unfreeze"]

    @admin.display(description="blocked because")
    def blocked_because(self, obj: Organization) -> str:
        return "; ".join(organization_block_reasons(obj)) or "-"

    @admin.action(description="Approve selected organizations")
    def approve(self, request: HttpRequest, queryset: QuerySet[Organization]) -> None:
        for org in queryset:
            organization_approve(organization_id=org.pk)
        self.message_user(request, f"Approved {queryset.count()} organization(s).")

    @admin.action(description="Freeze selected organizations")
    def freeze(self, request: HttpRequest, queryset: QuerySet[Organization]) -> None:
        for org in queryset:
            organization_set_status(organization_id=org.pk, status=Organization.Status.FROZEN)
        self.message_user(request, f"Froze {queryset.count()} organization(s).")

    @admin.action(description="Unfreeze selected organizations")
    def unfreeze(self, request: HttpRequest, queryset: QuerySet[Organization]) -> None:
        for org in queryset.filter(status=Organization.Status.FROZEN):
            organization_set_status(organization_id=org.pk, status=Organization.Status.ACTIVE)
        self.message_user(request, "Unfroze the frozen ones among the selected.")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "user__email", "organization__name"]
    autocomplete_fields = ["user", "organization"]


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    """Written by the members' services only: an accepted one is a record of who joined
    by whose word, an open one waits for its address to be confirmed."""

    list_display = ["email", "organization", "role", "invited_by", "created_at", "accepted_at"]
    list_filter = ["role", "accepted_at"]
    search_fields = ["email", "organization__name"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "organization", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["prefix", "name", "organization__name"]
    readonly_fields = ["organization", "prefix", "key_hash", "created_at", "last_used_at"]
    fields = ["organization", "name", "prefix", "key_hash", "created_at", "last_used_at",
              "revoked_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are issued by the organization and shown to it once
