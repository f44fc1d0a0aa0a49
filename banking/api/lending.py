"""Lending API: the caller's credit line, quotes, loans with their schedules, prepayment.

Every view acts for `request.organization` only; another organization's loan is a 404."""

from typing import Any

from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from banking.amortization import ScheduleRow
from banking.amounts import TOKENS_MAX
from banking.api.idempotency import idempotency_key_from
from banking.api.pagination import StandardPagination
from banking.models import Installment, Loan, LoanPrepayment
from banking.roles import Action
from banking.selectors_lending import credit_line_get, loan_get, loan_list, loan_quote
from banking.services.ledger import new_idempotency_key
from banking.services.lending import loan_prepay
from core.bounds import BoundedIntegerField

MAX_TOKENS = TOKENS_MAX


class CreditLineOutputSerializer(serializers.Serializer):
    limit = serializers.IntegerField(help_text="Most principal the organization may owe.")
    apr_bps = serializers.IntegerField(help_text="Yearly rate in basis points (1200 = 12 %).")
    max_term_months = serializers.IntegerField()
    used = serializers.IntegerField(help_text="Principal owed now.")
    available = serializers.IntegerField(help_text="What a new loan may borrow now.")


class InstallmentOutputSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    due_date = serializers.DateField()
    principal = serializers.IntegerField()
    interest = serializers.IntegerField(
        help_text="Interest charged; 0 when waived by a full prepayment before its due date."
    )
    status = serializers.ChoiceField(choices=Installment.Status.choices)


class LoanListOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    principal = serializers.IntegerField()
    apr_bps = serializers.IntegerField()
    term_months = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Loan.Status.choices)
    outstanding_principal = serializers.IntegerField()
    reference = serializers.CharField()
    created_at = serializers.DateTimeField()


class LoanDetailOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    principal = serializers.IntegerField()
    apr_bps = serializers.IntegerField()
    term_months = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Loan.Status.choices)
    outstanding_principal = serializers.IntegerField()
    schedule = InstallmentOutputSerializer(many=True)


class QuoteInputSerializer(serializers.Serializer):
    principal = BoundedIntegerField(min_value=1, max_value=MAX_TOKENS)
    term_months = BoundedIntegerField(min_value=1, max_value=120)
    first_due = serializers.DateField(
        required=False, help_text="Default: one month from today (same day, clamped)."
    )


class QuoteRowOutputSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    due_date = serializers.DateField()
    principal = serializers.IntegerField()
    interest = serializers.IntegerField()
    total = serializers.IntegerField()


class QuoteOutputSerializer(serializers.Serializer):
    principal = serializers.IntegerField()
    apr_bps = serializers.IntegerField()
    term_months = serializers.IntegerField()
    payment = serializers.IntegerField(help_text="The level monthly payment.")
    total_interest = serializers.IntegerField()
    total = serializers.IntegerField()
    schedule = QuoteRowOutputSerializer(many=True)


class PrepayInputSerializer(serializers.Serializer):
    amount = BoundedIntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_TOKENS,
        help_text="Pay whole installments up to this amount; leave out to repay the loan "
        "in full (future interest waived).",
    )


class PrepayOutputSerializer(serializers.Serializer):
    prepayment_id = serializers.IntegerField()
    amount = serializers.IntegerField(help_text="Tokens debited from the wallet.")
    principal = serializers.IntegerField()
    interest = serializers.IntegerField()
    transfer_id = serializers.IntegerField()
    loan = LoanDetailOutputSerializer()


def _schedule_row(row: ScheduleRow) -> dict[str, Any]:
    return {"number": row.number, "due_date": row.due_date, "principal": row.principal,
            "interest": row.interest, "total": row.total}


def loan_detail_data(loan: Loan) -> dict[str, Any]:
    return {
        "id": loan.pk,
        "principal": loan.principal,
        "apr_bps": loan.apr_bps,
        "term_months": loan.term_months,
        "status": loan.status,
        "outstanding_principal": loan.outstanding_principal,  # type: ignore[attr-defined]
        "schedule": [
            {"number": i.number, "due_date": i.due_date, "principal": i.principal,
             "interest": i.amount_charged - i.principal, "status": i.status}
            for i in loan.installments.all()
        ],
    }


class CreditLineGetApi(APIView):
    @extend_schema(responses=CreditLineOutputSerializer, summary="The caller's credit line")
    def get(self, request: Request) -> Response:
        line = credit_line_get(organization_id=request.organization.pk)  # type: ignore[attr-defined]
        data = {"limit": line.limit, "apr_bps": line.apr_bps,
                "max_term_months": line.max_term_months, "used": line.used,
                "available": line.available}
        return Response(CreditLineOutputSerializer(data).data)


class LoanQuoteApi(APIView):
    role_actions = {"POST": Action.READ}
    @extend_schema(
        request=QuoteInputSerializer,
        responses=QuoteOutputSerializer,
        summary="The schedule a loan would have, before confirming (writes nothing)",
    )
    def post(self, request: Request) -> Response:
        body = QuoteInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        quote = loan_quote(
            organization_id=request.organization.pk,  # type: ignore[attr-defined]
            principal=body.validated_data["principal"],
            term_months=body.validated_data["term_months"],
            first_due=body.validated_data.get("first_due"),
        )
        data = {
            "principal": quote.principal, "apr_bps": quote.apr_bps,
            "term_months": quote.term_months, "payment": quote.payment,
            "total_interest": quote.total_interest, "total": quote.total,
            "schedule": [_schedule_row(r) for r in quote.schedule],
        }
        return Response(QuoteOutputSerializer(data).data)


class LoanListApi(APIView):
    # Read by the schema (the view pages by hand): the cursor and the page's shape.
    pagination_class = StandardPagination

    @extend_schema(responses=LoanListOutputSerializer(many=True),
                   summary="The caller's loans, newest first")
    def get(self, request: Request) -> Response:
        loans = loan_list(organization_id=request.organization.pk)  # type: ignore[attr-defined]
        paginator = StandardPagination()
        page = paginator.paginate_queryset(loans, request, view=self)
        return paginator.get_paginated_response(LoanListOutputSerializer(page, many=True).data)


class LoanGetApi(APIView):
    @extend_schema(responses=LoanDetailOutputSerializer, summary="One loan with its schedule")
    def get(self, request: Request, loan_id: int) -> Response:
        loan = loan_get(organization_id=request.organization.pk, loan_id=loan_id)  # type: ignore[attr-defined]
        return Response(LoanDetailOutputSerializer(loan_detail_data(loan)).data)


class LoanPrepayApi(APIView):
    role_actions = {"POST": Action.LOANS}
    @extend_schema(
        request=PrepayInputSerializer,
        responses=PrepayOutputSerializer,
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER,
                                     description="The same key pays once.")],
        summary="Pay a loan ahead of its schedule from the wallet",
        description="Overdue installments first, then the next ones, each whole. Without "
        "an amount the loan is repaid in full: installments already due with their "
        "interest, the rest principal only (their interest is waived).",
    )
    def post(self, request: Request, loan_id: int) -> Response:
        body = PrepayInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        organization_id = request.organization.pk  # type: ignore[attr-defined]
        key = idempotency_key_from(request, scope="loan-prepay") or new_idempotency_key(
            f"loan-prepay:org{organization_id}")
        prepayment: LoanPrepayment = loan_prepay(
            organization_id=organization_id,
            loan_id=loan_id,
            amount=body.validated_data.get("amount"),
            idempotency_key=key,
        )
        loan = loan_get(organization_id=organization_id, loan_id=loan_id)
        data = {
            "prepayment_id": prepayment.pk, "amount": prepayment.amount,
            "principal": prepayment.principal, "interest": prepayment.interest,
            "transfer_id": prepayment.transfer_id, "loan": loan_detail_data(loan),
        }
        return Response(PrepayOutputSerializer(data).data)


urlpatterns = [
    path("credit-line/", CreditLineGetApi.as_view(), name="credit-line"),
    path("loans/", LoanListApi.as_view(), name="loans"),
    path("loans/quote/", LoanQuoteApi.as_view(), name="loan-quote"),
    path("loans/<int:loan_id>/", LoanGetApi.as_view(), name="loan"),
    path("loans/<int:loan_id>/prepay/", LoanPrepayApi.as_view(), name="loan-prepay"),
]
