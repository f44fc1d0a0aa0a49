"""`webhooks/`: an organization's outbound webhook endpoints and their delivery log."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from banking.models import WebhookDelivery, WebhookEndpoint, WebhookEventType
from banking.roles import Action
from banking.services.webhooks import webhook_endpoint_create, webhook_endpoint_delete
from core.errors import NotFound


def _org_id(request: Request) -> int:
    return int(request.organization.pk)  # type: ignore[attr-defined]


class WebhookInputSerializer(serializers.Serializer[Any]):
    url = serializers.CharField(max_length=500)
    events = serializers.ListField(child=serializers.ChoiceField(
        choices=WebhookEventType.choices), min_length=1, max_length=len(WebhookEventType))


class WebhookOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()


class WebhookCreatedSerializer(WebhookOutputSerializer):
    secret = serializers.CharField(help_text="signs every delivery; shown once")


class WebhookDeliverySerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    event_id = serializers.IntegerField(source="message.event_id")
    event_type = serializers.CharField(source="message.event.type")
    attempt = serializers.IntegerField()
    status_code = serializers.IntegerField(allow_null=True)
    succeeded = serializers.BooleanField()
    error = serializers.CharField()
    duration_ms = serializers.IntegerField()
    created_at = serializers.DateTimeField()


def _endpoints(organization_id: int) -> Any:
    return WebhookEndpoint.objects.filter(organization_id=organization_id, is_active=True)


class WebhookListCreateApi(APIView):
    role_actions = {"POST": Action.WEBHOOKS}

    @extend_schema(responses=WebhookOutputSerializer(many=True),
                   summary="Your webhook endpoints")
    def get(self, request: Request) -> Response:
        return Response(WebhookOutputSerializer(_endpoints(_org_id(request)), many=True).data)

    @extend_schema(request=WebhookInputSerializer, responses={201: WebhookCreatedSerializer},
                   summary="Register an https endpoint for job and wallet events; the "
                           "signing secret is returned once")
    def post(self, request: Request) -> Response:
        s = WebhookInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        created = webhook_endpoint_create(organization_id=_org_id(request), **s.validated_data)
        data = {**WebhookOutputSerializer(created.endpoint).data, "secret": created.secret}
        return Response(data, status=201)


class WebhookDeleteApi(APIView):
    role_actions = {"DELETE": Action.WEBHOOKS}

    @extend_schema(responses={204: None}, summary="Stop sending to an endpoint")
    def delete(self, request: Request, webhook_id: int) -> Response:
        webhook_endpoint_delete(organization_id=_org_id(request), endpoint_id=webhook_id)
        return Response(status=204)


class WebhookDeliveriesApi(APIView):
    @extend_schema(responses=WebhookDeliverySerializer(many=True),
                   summary="Every delivery attempt to an endpoint, newest first")
    def get(self, request: Request, webhook_id: int) -> Response:
        if not _endpoints(_org_id(request)).filter(pk=webhook_id).exists():
            raise NotFound("No such webhook endpoint.")
        rows = (WebhookDelivery.objects.filter(message__endpoint_id=webhook_id)
                .select_related("message__event").order_by("-id")[:200])
        return Response(WebhookDeliverySerializer(rows, many=True).data)
