from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from banking.api.pagination import StandardPagination
from banking.api.serializers import (
    StatementEntrySerializer,
    StatementFilterSerializer,
    TransferDetailSerializer,
    WalletOutputSerializer,
)
from banking.exports import statement_csv_response
from banking.selectors import statement_list, transfer_entries_get, wallet_get


class WalletGetApi(APIView):
    @extend_schema(responses=WalletOutputSerializer, summary="Balances of the caller's wallet")
    def get(self, request: Request) -> Response:
        summary = wallet_get(organization_id=request.organization.pk)  # type: ignore[attr-defined]
        data = {
            "available": summary.available,
            "held": summary.held,
            "credit_limit": summary.credit_limit,
            "credit_used": summary.credit_used,
            "debt": summary.debt,
            "owed": summary.owed,
        }
        return Response(WalletOutputSerializer(data).data)


class WalletTransferListApi(APIView):
    # Read by the schema (the view pages by hand): the cursor and the page's shape.
    pagination_class = StandardPagination

    @extend_schema(
        parameters=[StatementFilterSerializer],
        responses={(200, "application/json"): StatementEntrySerializer(many=True),
                   (200, "text/csv"): OpenApiTypes.STR},
        summary="The statement: every entry on the caller's accounts, newest first",
        description="Add `format=csv` for a CSV download of the same rows (all pages).",
    )
    def get(self, request: Request) -> Response | StreamingHttpResponse:
        filters = StatementFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        entries = statement_list(
            organization_id=request.organization.pk,  # type: ignore[attr-defined]
            kinds=f.get("kind"),
            purposes=f.get("account"),
            date_from=f.get("date_from"),
            date_to=f.get("date_to"),
        )
        if f["format"] == "csv":
            return statement_csv_response(entries)
        paginator = StandardPagination()
        page = paginator.paginate_queryset(entries, request, view=self)
        return paginator.get_paginated_response(StatementEntrySerializer(page, many=True).data)


class WalletTransferGetApi(APIView):
    @extend_schema(responses=TransferDetailSerializer,
                   summary="One transfer of the statement, with the caller's entries in it")
    def get(self, request: Request, transfer_id: int) -> Response:
        entries = transfer_entries_get(
            organization_id=request.organization.pk,  # type: ignore[attr-defined]
            transfer_id=transfer_id)
        transfer = entries[0].transfer
        data = {"id": transfer.pk, "created_at": transfer.created_at, "kind": transfer.kind,
                "reference": transfer.reference, "memo": transfer.memo,
                "reverses_id": transfer.reverses_id, "entries": entries}
        return Response(TransferDetailSerializer(data).data)
