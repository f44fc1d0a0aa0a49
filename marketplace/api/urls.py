from django.urls import path

from marketplace.api import views

urlpatterns = [
    path("deposits/", views.DepositListCreateApi.as_view(), name="deposits"),
    path("advances/", views.AdvanceListCreateApi.as_view(), name="advances"),
    path("blocks/availability/", views.BlockAvailabilityApi.as_view(), name="block-availability"),
    path("blocks/quote/", views.BlockQuoteApi.as_view(), name="block-quote"),
    path("blocks/", views.BlockListCreateApi.as_view(), name="blocks"),
    path("blocks/<int:block_id>/sell-back/", views.BlockSellBackApi.as_view(),
         name="block-sell-back"),
    path("gpu-classes/<int:gpu_class_id>/price-history/", views.PriceHistoryApi.as_view(),
         name="price-history"),
    path("wallet/statement/", views.WalletStatementApi.as_view(), name="wallet-statement"),
    path("alerts/low-balance/", views.LowBalanceAlertApi.as_view(), name="low-balance-alert"),
]
