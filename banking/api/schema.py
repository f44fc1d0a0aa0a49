"""OpenAPI descriptions of the authentication schemes (drf-spectacular extensions)."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from banking.api.permissions import view_action
from banking.roles import ACTION_SCOPE
from core.api_schema import ErrorDocumentingAutoSchema


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "banking.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`: a key of one organization, shown once when issued.",
        }


class ScopedAutoSchema(ErrorDocumentingAutoSchema):
    """Every operation of an organization's API says which API key scope it needs
    (`x-required-scope` and a line of its description), from the same table the
    permission check reads (banking.roles)."""

    def get_operation(self, *args: Any, **kwargs: Any) -> Any:
        operation = super().get_operation(*args, **kwargs)
        if operation is None or not self._organization_view():
            return operation
        note = getattr(self.view, "scope_notes", {}).get(self.method)
        if note is None:
            action = view_action(self.view, self.method)
            scope = ACTION_SCOPE.get(action) if action is not None else None
            if scope is None:
                return operation
            note = scope
        operation["x-required-scope"] = note
        described = operation.get("description", "")
        operation["description"] = (described + "\n\n" if described else "") + (
            f"API key scope: `{note}`."
        )
        return operation

    def _organization_view(self) -> bool:
        from banking.api.permissions import HasOrganization

        try:
            permissions = self.view.get_permissions()
        except Exception:  # a view whose permissions need a real request
            return False
        return any(isinstance(p, HasOrganization) for p in permissions)
