"""`Authorization: Node <token>`: the caller is a node's agent (its rate:
scheduler.agent_api.rate_limit)."""

from dataclasses import dataclass
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from core.client_address import client_address
from core.credential_guard import client_address_var, credential_check
from scheduler.agent_api.rate_limit import NodeRateThrottle
from scheduler.models import Node
from scheduler.services.nodes import node_authenticate


@dataclass
class NodePrincipal:
    node: Node
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False

    @property
    def pk(self) -> str:
        return f"node:{self.node.pk}"


class NodeTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Node"

    def authenticate(self, request: Request) -> tuple[NodePrincipal, Node] | None:
        scheme, _, raw = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme != self.keyword:
            return None
        address = client_address(request)
        credential_check(address)
        reset = client_address_var.set(address)  # the lookup's guard counts failures by it
        try:
            node = node_authenticate(raw)
        finally:
            client_address_var.reset(reset)
        if node is None or node.status == Node.Status.DISABLED:
            raise exceptions.AuthenticationFailed("Invalid node token.")
        return NodePrincipal(node), node

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class IsNode(BasePermission):
    message = "Authenticate with the node's token: Authorization: Node <token>."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, Node)


class NodeTokenScheme(OpenApiAuthenticationExtension):
    target_class = "scheduler.api.authentication.NodeTokenAuthentication"
    name = "NodeToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`Node <token>`: the node's agent token, shown once at "
                               "registration."}


__all__ = ["IsNode", "NodePrincipal", "NodeRateThrottle", "NodeTokenAuthentication",
           "NodeTokenScheme"]
