from django.urls import include, path

from banking.api.payments import (
    PayoutAccountApi,
    PayoutCreateListApi,
    TopUpConfirmApi,
    TopUpCreateListApi,
    TopUpGetApi,
    TopUpQuoteApi,
)
from banking.api.views import WalletGetApi, WalletTransferGetApi, WalletTransferListApi
from banking.api.webhooks import WebhookDeleteApi, WebhookDeliveriesApi, WebhookListCreateApi

urlpatterns = [
    path("wallet/", WalletGetApi.as_view(), name="wallet"),
    path("wallet/transfers/", WalletTransferListApi.as_view(), name="wallet-transfers"),
    path("wallet/transfers/<int:transfer_id>/", WalletTransferGetApi.as_view(),
         name="wallet-transfer"),
    path("", include("banking.api.lending")),
    # Payments
    path("topups/", TopUpCreateListApi.as_view(), name="topups"),
    path("topups/quote/", TopUpQuoteApi.as_view(), name="topup-quote"),
    path("topups/<int:topup_id>/", TopUpGetApi.as_view(), name="topup"),
    path("topups/<int:topup_id>/confirm/", TopUpConfirmApi.as_view(), name="topup-confirm"),
    path("payouts/", PayoutCreateListApi.as_view(), name="payouts"),
    path("payout-account/", PayoutAccountApi.as_view(), name="payout-account"),
    path("webhooks/", WebhookListCreateApi.as_view(), name="webhooks"),
    path("webhooks/<int:webhook_id>/", WebhookDeleteApi.as_view(), name="webhook"),
    path("webhooks/<int:webhook_id>/deliveries/", WebhookDeliveriesApi.as_view(),
         name="webhook-deliveries"),
]
