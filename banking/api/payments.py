"""Top-ups (card payments that buy tokens), provider payouts and the payout account."""

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from banking.amounts import TOKENS_MAX
from banking.api.idempotency import idempotency_key_from
from banking.api.pagination import StandardPagination
from banking.api.permissions import IsProvider
from banking.models import Payout, PayoutAccount, TopUp
from banking.roles import Action
from banking.selectors import payout_account_get, payout_list, topup_get, topup_list
from banking.services.payments import (
    CardDeclined,
    PaymentProviderError,
    topup_confirm,
    topup_create,
    topup_quote,
)
from banking.services.payouts import payout_account_set, payout_price, payout_request
from core.bounds import INTEGER_MAX, BoundedIntegerField
from core.errors import DomainError


def _org_id(request: Request) -> int:
    return int(request.organization.pk)  # type: ignore[attr-defined]


class TopUpOutputSerializer(serializers.ModelSerializer):
    payment_intent_id = serializers.CharField(allow_null=True)
    cents_per_million = serializers.DecimalField(max_digits=14, decimal_places=6)
    publishable_key = serializers.SerializerMethodField(
        help_text="For Stripe.js in the buyer's browser: a card Element makes the "
        "card_token for the confirm call; when payment_status is requires_action, "
        "stripe.confirmCardPayment(client_secret) runs the issuer's authentication."
    )

    def get_publishable_key(self, obj: TopUp) -> str:
        return str(settings.STRIPE_PUBLISHABLE_KEY)

    class Meta:
        model = TopUp
        fields = [
            "id", "status", "amount_cents", "currency", "tokens", "cents_per_million",
            "payment_intent_id", "client_secret", "payment_status", "failure_code",
            "failure_message",
            "refunded_cents", "refunded_tokens", "created_at", "succeeded_at",
            "publishable_key",
        ]
        extra_kwargs = {
            "payment_status": {"help_text": "The PaymentIntent's status when last seen."},
        }


def _declined(topup: TopUp) -> DomainError:
    """A failed payment as an error a buyer can act on: a card decline (402, reported on
    the PaymentIntent) or a request the provider refused outright (400)."""
    fields = {
        "topup_id": topup.pk,
        "payment_intent_id": topup.payment_intent_id,
        "decline_code": topup.failure_code,
    }
    message = topup.failure_message or "The payment failed."
    if topup.payment_intent_id is None:
        return PaymentProviderError(message, fields=fields)
    return CardDeclined(message, fields=fields)


class TopUpQuoteApi(APIView):
    class TopUpQuoteInputSerializer(serializers.Serializer):
        currency = serializers.CharField(max_length=3, default="usd")
        amount_cents = BoundedIntegerField(required=False, min_value=1, max_value=INTEGER_MAX)
        tokens = BoundedIntegerField(required=False, min_value=1, max_value=TOKENS_MAX)

    class TopUpQuoteOutputSerializer(serializers.Serializer):
        currency = serializers.CharField()
        amount_cents = serializers.IntegerField()
        tokens = serializers.IntegerField()
        cents_per_million = serializers.DecimalField(max_digits=14, decimal_places=6)
        min_amount_cents = serializers.IntegerField()
        max_amount_cents = serializers.IntegerField()

    @extend_schema(
        parameters=[TopUpQuoteInputSerializer],
        responses=TopUpQuoteOutputSerializer,
        summary="How many tokens a payment buys (or what tokens cost) before paying",
    )
    def get(self, request: Request) -> Response:
        params = self.TopUpQuoteInputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        quote = topup_quote(**params.validated_data)
        return Response(self.TopUpQuoteOutputSerializer(quote).data)


class TopUpCreateListApi(APIView):
    # Read by the schema (the view pages by hand): the cursor and the page's shape.
    pagination_class = StandardPagination
    role_actions = {"POST": Action.TOPUP}

    class TopUpCreateInputSerializer(serializers.Serializer):
        currency = serializers.CharField(max_length=3, default="usd")
        amount_cents = BoundedIntegerField(required=False, min_value=1, max_value=INTEGER_MAX)
        tokens = BoundedIntegerField(required=False, min_value=1, max_value=TOKENS_MAX)
        payment_method = serializers.CharField(
            required=False, max_length=255,
            help_text="Confirm at once with this payment method, e.g. pm_card_visa.",
        )

    @extend_schema(
        request=TopUpCreateInputSerializer,
        responses={201: TopUpOutputSerializer},
        summary="Start a card top-up (creates a Stripe PaymentIntent)",
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)],
    )
    def post(self, request: Request) -> Response:
        data = self.TopUpCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        topup = topup_create(
            organization_id=_org_id(request),
            idempotency_key=idempotency_key_from(request, scope="topup"),
            **data.validated_data,
        )
        if topup.status == TopUp.Status.FAILED:
            raise _declined(topup)
        return Response(TopUpOutputSerializer(topup).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=TopUpOutputSerializer(many=True), summary="The caller's top-ups")
    def get(self, request: Request) -> Response:
        paginator = StandardPagination()
        page = paginator.paginate_queryset(
            topup_list(organization_id=_org_id(request)), request, view=self
        )
        return paginator.get_paginated_response(TopUpOutputSerializer(page, many=True).data)


class TopUpGetApi(APIView):
    @extend_schema(responses=TopUpOutputSerializer, summary="One top-up")
    def get(self, request: Request, topup_id: int) -> Response:
        topup = topup_get(organization_id=_org_id(request), topup_id=topup_id)
        return Response(TopUpOutputSerializer(topup).data)


class TopUpConfirmApi(APIView):
    role_actions = {"POST": Action.TOPUP}
    class TopUpConfirmInputSerializer(serializers.Serializer):
        payment_method = serializers.CharField(required=False, max_length=255)
        card_token = serializers.RegexField(
            r"^tok_\w+$", required=False, max_length=255,
            help_text="A Stripe.js card token (stripe.createToken on a card Element): the "
            "card is saved on your customer and the payment confirmed with it.",
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if attrs.get("payment_method") and attrs.get("card_token"):
                raise serializers.ValidationError(
                    "Give payment_method or card_token, not both."
                )
            return attrs

    @extend_schema(
        request=TopUpConfirmInputSerializer,
        responses=TopUpOutputSerializer,
        summary="Return path: confirm (optionally with a payment method) and credit the "
        "tokens if the payment succeeded",
    )
    def post(self, request: Request, topup_id: int) -> Response:
        data = self.TopUpConfirmInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        topup = topup_confirm(
            organization_id=_org_id(request), topup_id=topup_id, **data.validated_data
        )
        if topup.status == TopUp.Status.FAILED:
            raise _declined(topup)
        return Response(TopUpOutputSerializer(topup).data)


class PayoutOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Payout
        fields = [
            "id", "status", "tokens", "amount_cents", "currency", "destination", "is_sweep",
            "failure_message", "stripe_transfer_id", "approved_at", "executed_at", "created_at",
        ]


class PayoutCreateListApi(APIView):
    # Read by the schema (the view pages by hand): the cursor and the page's shape.
    pagination_class = StandardPagination
    role_actions = {"POST": Action.PAYOUT_REQUEST}
    permission_classes = [IsProvider]

    class PayoutCreateInputSerializer(serializers.Serializer):
        tokens = BoundedIntegerField(min_value=1, max_value=TOKENS_MAX)

    @extend_schema(
        request=PayoutCreateInputSerializer,
        responses={201: PayoutOutputSerializer},
        summary="Cash out tokens to the provider's connected account (held until paid)",
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)],
    )
    def post(self, request: Request) -> Response:
        data = self.PayoutCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        payout = payout_request(
            organization_id=_org_id(request),
            tokens=data.validated_data["tokens"],
            idempotency_key=idempotency_key_from(request, scope="payout"),
        )
        return Response(PayoutOutputSerializer(payout).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=PayoutOutputSerializer(many=True), summary="The caller's payouts")
    def get(self, request: Request) -> Response:
        paginator = StandardPagination()
        page = paginator.paginate_queryset(
            payout_list(organization_id=_org_id(request)), request, view=self
        )
        return paginator.get_paginated_response(PayoutOutputSerializer(page, many=True).data)


class PayoutAccountOutputSerializer(serializers.Serializer):
    stripe_account_id = serializers.CharField(allow_null=True)
    auto_payout_threshold = serializers.IntegerField(allow_null=True)
    updated_at = serializers.DateTimeField(allow_null=True)
    payout_min_tokens = serializers.IntegerField()
    payout_cents_per_million = serializers.CharField()
    payout_currency = serializers.CharField()


class PayoutAccountApi(APIView):
    role_actions = {"PUT": Action.PAYOUT_ACCOUNT}
    permission_classes = [IsProvider]

    class PayoutAccountInputSerializer(serializers.Serializer):
        stripe_account_id = serializers.CharField(max_length=255)
        auto_payout_threshold = BoundedIntegerField(
            required=False, allow_null=True, min_value=0, max_value=TOKENS_MAX, default=None
        )

    class PayoutAccountModelSerializer(serializers.ModelSerializer):
        class Meta:
            model = PayoutAccount
            fields = ["stripe_account_id", "auto_payout_threshold", "updated_at"]

    def _body(self, account: PayoutAccount | None) -> dict[str, Any]:
        body: dict[str, Any] = (
            dict(self.PayoutAccountModelSerializer(account).data) if account is not None
            else {"stripe_account_id": None, "auto_payout_threshold": None, "updated_at": None}
        )
        body["payout_min_tokens"] = settings.PAYOUT_MIN_TOKENS
        body["payout_cents_per_million"] = str(payout_price())
        body["payout_currency"] = settings.PAYOUT_CURRENCY
        return body

    @extend_schema(
        responses=PayoutAccountOutputSerializer,
        summary="The provider's payout account and payout terms",
    )
    def get(self, request: Request) -> Response:
        return Response(self._body(payout_account_get(organization_id=_org_id(request))))

    @extend_schema(
        request=PayoutAccountInputSerializer,
        responses=PayoutAccountOutputSerializer,
        summary="Set the connected Stripe account and the auto-payout threshold",
    )
    def put(self, request: Request) -> Response:
        data = self.PayoutAccountInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        account = payout_account_set(organization_id=_org_id(request), **data.validated_data)
        return Response(self._body(account))

