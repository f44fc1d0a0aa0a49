from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from banking.api.idempotency import idempotency_key_from
from banking.api.pagination import SequencePagination, StandardPagination
from banking.api.permissions import HasOrganization, IsBuyer, IsProvider, action_check
from banking.roles import Action
from banking.services.ledger import new_idempotency_key
from marketplace.api import serializers as s
from marketplace.models import Block, LowBalanceAlert
from marketplace.selectors import (
    advance_list,
    block_get,
    block_list,
    deposit_list,
    price_history_list,
)
from marketplace.services.advances import advance_create, advance_limit
from marketplace.services.alerts import low_balance_alert_set
from marketplace.services.blocks import availability, block_buy, block_quote, block_sell_back
from marketplace.services.deposits import deposit_create
from marketplace.statement import line_key, statement_lines

IDEMPOTENCY = OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)


def _org(request: Request) -> int:
    return int(request.organization.pk)  # type: ignore[attr-defined]


def _key(request: Request, scope: str) -> str:
    return idempotency_key_from(request, scope=scope) or new_idempotency_key(scope)


def _page(view: APIView, request: Request, qs: QuerySet[Any], serializer: type) -> Response:
    paginator = StandardPagination()
    page = paginator.paginate_queryset(qs, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True).data)


class DepositListCreateApi(APIView):
    # Read by the schema (the view pages by hand): the cursor and the page's shape.
    pagination_class = StandardPagination
    role_actions = {"POST": Action.NODES}
    permission_classes = [IsProvider]

    @extend_schema(responses=s.DepositOutputSerializer(many=True),
                   summary="Your capacity deposits: expected, earned and missed yield")
    def get(self, request: Request) -> Response:
        return _page(self, request, deposit_list(provider_id=_org(request)),
                     s.DepositOutputSerializer)

    @extend_schema(request=s.DepositInputSerializer, responses={201: s.DepositOutputSerializer},
                   parameters=[IDEMPOTENCY],
                   summary="Deposit a bank-mode node's GPUs for a window at the deposit rate")
    def post(self, request: Request) -> Response:
        data = s.DepositInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        deposit = deposit_create(provider_id=_org(request), node_id=d["node"],
                                 gpu_count=d["gpu_count"], start=d["start"], end=d["end"],
                                 idempotency_key=idempotency_key_from(request, scope="deposit"))
        return Response(s.DepositOutputSerializer(deposit).data, status=201)


class AdvanceListCreateApi(APIView):
    # Read by the schema (the view pages by hand): the cursor and the page's shape.
    pagination_class = StandardPagination
    role_actions = {"POST": Action.LOANS}
    permission_classes = [IsProvider]

    @extend_schema(responses=s.AdvanceOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        limit = advance_limit(provider_id=_org(request))
        response = _page(self, request, advance_list(provider_id=_org(request)),
                         s.AdvanceOutputSerializer)
        response.data["available"] = limit.available
        return response

    @extend_schema(request=s.AdvanceInputSerializer, responses={201: s.AdvanceOutputSerializer},
                   parameters=[IDEMPOTENCY], summary="Borrow against expected yield")
    def post(self, request: Request) -> Response:
        data = s.AdvanceInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        advance = advance_create(provider_id=_org(request), amount=data.validated_data["amount"],
                                 idempotency_key=_key(request, "advance"))
        return Response(s.AdvanceOutputSerializer(advance).data, status=201)


class BlockAvailabilityApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(parameters=[s.AvailabilityQuerySerializer],
                   responses=s.AvailabilityOutputSerializer,
                   summary="Bank GPUs free per hour slot, and a price quote")
    def get(self, request: Request) -> Response:
        q = s.AvailabilityQuerySerializer(data=request.query_params)
        q.is_valid(raise_exception=True)
        d = q.validated_data
        a = availability(gpu_class=d["gpu_class"], start=d["start"], end=d["end"],
                         gpu_count=d["gpu_count"])
        return Response({
            "gpu_class": a.gpu_class.name,
            "slots": [{"start": t, "free_gpus": free} for t, free in a.slots],
            "min_free_gpus": a.min_free_gpus,
            "quote": {"gpu_count": a.gpu_count, "hours": len(a.slots),
                      "rate_per_gpu_hour": a.rate_per_gpu_hour, "discount_bps": a.discount_bps,
                      "price": a.price},
        })


class BlockQuoteApi(APIView):
    role_actions = {"POST": Action.READ}
    permission_classes = [IsBuyer]

    @extend_schema(request=s.BlockInputSerializer, responses=s.BlockQuoteOutputSerializer,
                   summary="Price, and the installment schedule when financed; writes nothing")
    def post(self, request: Request) -> Response:
        data = s.BlockInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        quote = block_quote(organization_id=_org(request), **data.validated_data)
        return Response(s.BlockQuoteOutputSerializer(quote).data)


class BlockListCreateApi(APIView):
    # Read by the schema (the view pages by hand): the cursor and the page's shape.
    pagination_class = StandardPagination
    # POST is checked once its body says how it is paid: financed opens a loan (billing),
    # from the wallet it is a block (developers).
    role_actions = {"POST": None}
    scope_notes = {"POST": "blocks (paid from the wallet) or billing (financed)"}
    def get_permissions(self) -> list[Any]:
        return [IsBuyer()] if self.request.method == "POST" else [HasOrganization()]

    @extend_schema(responses=s.BlockOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return _page(self, request, block_list(organization_id=_org(request)),
                     s.BlockOutputSerializer)

    @extend_schema(request=s.BlockInputSerializer, responses={201: s.BlockOutputSerializer},
                   parameters=[IDEMPOTENCY],
                   summary="Buy a block of bank GPUs from the wallet or financed")
    def post(self, request: Request) -> Response:
        data = s.BlockInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        financed = data.validated_data["payment"] == Block.Payment.FINANCED
        action_check(request, Action.LOANS if financed else Action.BLOCKS)
        block = block_buy(organization_id=_org(request), idempotency_key=_key(request, "block"),
                          **data.validated_data)
        return Response(s.BlockOutputSerializer(block_get(organization_id=_org(request),
                                                          block_id=block.pk)).data, status=201)


class BlockSellBackApi(APIView):
    role_actions = {"POST": Action.BLOCKS}
    permission_classes = [IsBuyer]

    @extend_schema(request=s.SellBackInputSerializer, responses={201: s.SellBackOutputSerializer},
                   parameters=[IDEMPOTENCY], summary="Sell unused future time back to the bank")
    def post(self, request: Request, block_id: int) -> Response:
        data = s.SellBackInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        sell_back = block_sell_back(organization_id=_org(request), block_id=block_id,
                                    gpu_count=data.validated_data["gpu_count"],
                                    start=data.validated_data["start"],
                                    idempotency_key=_key(request, "sell-back"))
        return Response(s.SellBackOutputSerializer(sell_back).data, status=201)


class PriceHistoryApi(APIView):
    # Read by the schema (the view pages by hand): the cursor and the page's shape.
    pagination_class = StandardPagination

    permission_classes = [AllowAny]

    @extend_schema(responses=s.PriceHistorySerializer(many=True))
    def get(self, request: Request, gpu_class_id: int) -> Response:
        return _page(self, request, price_history_list(gpu_class_id=gpu_class_id),
                     s.PriceHistorySerializer)


class LowBalanceAlertApi(APIView):
    role_actions = {"PUT": Action.TOPUP}
    permission_classes = [HasOrganization]

    @extend_schema(responses=s.AlertSerializer)
    def get(self, request: Request) -> Response:
        alert = LowBalanceAlert.objects.filter(organization_id=_org(request)).first()
        return Response({"threshold": alert.threshold if alert else None})

    @extend_schema(request=s.AlertSerializer, responses=s.AlertSerializer,
                   summary="Email once when the wallet drops below the threshold (null: off)")
    def put(self, request: Request) -> Response:
        data = s.AlertSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        alert = low_balance_alert_set(organization_id=_org(request),
                                      threshold=data.validated_data["threshold"])
        return Response({"threshold": alert.threshold if alert else None})


class WalletStatementApi(APIView):
    """The statement a person reads: one line per job (its captures inside), top-up,
    block, installment, advance, payout; `wallet/transfers/` stays the ledger."""

    # Read by the schema (the view pages by hand): the cursor and the page's shape.
    pagination_class = SequencePagination

    @extend_schema(parameters=[s.StatementQuerySerializer],
                   responses=s.StatementLineSerializer(many=True),
                   summary="The statement grouped per job and purchase, newest first")
    def get(self, request: Request) -> Response:
        query = s.StatementQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        lines = statement_lines(organization_id=request.organization.pk,  # type: ignore[attr-defined]
                                date_from=query.validated_data.get("date_from"),
                                date_to=query.validated_data.get("date_to"))
        paginator = SequencePagination()
        page = paginator.paginate_sequence(lines, request, key=line_key)
        return paginator.get_paginated_response(
            s.StatementLineSerializer(page, many=True).data)
