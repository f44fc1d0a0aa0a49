"""Admin bases for rows that only services write (the ledger, payments, the bank's
products): the admin shows them and never edits them."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest


class ReadOnlyAdmin(admin.ModelAdmin):
    """Append-only or service-written rows: no adding, changing or deleting here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ActionsOnlyAdmin(ReadOnlyAdmin):
    """Read-only rows whose change list runs actions that call services."""

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The change list runs actions only with the change permission; every field stays
        # read-only, and no row's page lets it be saved.
        return obj is None and admin.ModelAdmin.has_change_permission(self, request)
