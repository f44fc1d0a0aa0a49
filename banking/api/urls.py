from django.urls import include, path

from banking.api.views import WalletGetApi, WalletTransferListApi

urlpatterns = [
    path("wallet/", WalletGetApi.as_view(), name="wallet"),
    path("wallet/transfers/", WalletTransferListApi.as_view(), name="wallet-transfers"),
    path("", include("banking.api.lending")),
]
