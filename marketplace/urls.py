"""Storefront pages, mounted at "/" (after the API and the admin). Names live in the
`store` namespace: `{% url 'store:wallet' %}`."""

from typing import Any

from allauth.account import views as allauth_views
from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from marketplace.views import (
    accounts,
    api_keys,
    audit,
    auto_topup,
    bank,
    compute,
    downloads,
    job_results,
    pages,
    provider,
    wallet,
    webhooks,
)

app_name = "store"

AUTH = "marketplace/auth/"


def _auth(view: Any, template: str, **kwargs: Any) -> Any:
    return view.as_view(template_name=AUTH + template, **kwargs)


urlpatterns = [
    path("", pages.home, name="home"),
    # the node agent's wheel, for providers' GPU machines (no login: they hold only the URL)
    path("downloads/suanli_agent-<str:version>-py3-none-any.whl", downloads.agent_wheel,
         name="agent-wheel"),
    path("downloads/suanli-agent-<str:version>.whl", downloads.agent_wheel_short,
         name="agent-wheel-short"),
    # accounts
    path("signup/", allauth_views.signup, name="signup"),
    path("login/", allauth_views.login, name="login"),
    path("logout/", allauth_views.logout, name="logout"),
    path("password-reset/", allauth_views.password_reset, name="password_reset"),
    path("password-reset/sent/", _auth(auth_views.PasswordResetDoneView,
                                       "password_reset_done.html"),
         name="password_reset_done"),
    path("password-reset/<uidb64>/<token>/", _auth(
        auth_views.PasswordResetConfirmView, "password_reset_confirm.html",
        success_url=reverse_lazy("store:password_reset_complete"),
    ), name="password_reset_confirm"),
    path("password-reset/done/", _auth(auth_views.PasswordResetCompleteView,
                                       "password_reset_complete.html"),
         name="password_reset_complete"),
    path("members/", accounts.members, name="members"),
    path("members/<int:user_id>/", accounts.member_change, name="member_change"),
    path("audit/", audit.audit, name="audit"),
    path("organization/security/", accounts.organization_security,
         name="organization_security"),
    path("audit.csv", audit.audit_csv, name="audit_csv"),
    path("organization/switch/", accounts.organization_switch, name="organization_switch"),
    # wallet
    path("wallet/", wallet.wallet, name="wallet"),
    path("wallet/statement.csv", wallet.statement_csv, name="statement_csv"),
    path("wallet/statement-lines.csv", wallet.statement_lines_csv, name="statement_lines_csv"),
    path("wallet/spend.json", wallet.spend_json, name="spend_json"),
    path("wallet/auto-topup/", auto_topup.auto_topup, name="auto_topup"),
    path("wallet/alert/", wallet.low_balance_alert, name="low_balance_alert"),
    path("wallet/transfers/<int:transfer_id>/", wallet.transfer_detail, name="transfer_detail"),
    path("wallet/topup/", wallet.topup, name="topup"),
    path("wallet/topups/<int:topup_id>/pay/", wallet.topup_pay, name="topup_pay"),
    # API keys
    path("api-keys/", api_keys.api_keys, name="api_keys"),
    path("api-keys/created/", api_keys.api_key_created, name="api_key_created"),
    path("api-keys/<int:api_key_id>/revoke/", api_keys.api_key_revoke_view,
         name="api_key_revoke"),
    # compute and the bank's products
    path("catalog/", compute.catalog, name="catalog"),
    path("jobs/", compute.jobs, name="jobs"),
    path("jobs/rows/", compute.job_rows, name="job_rows"),
    path("jobs/estimate/", compute.job_estimate, name="job_estimate"),
    path("jobs/<int:job_id>/", compute.job_detail, name="job_detail"),
    path("jobs/<int:job_id>/cancel/", compute.job_cancel_view, name="job_cancel"),
    path("webhooks/", webhooks.webhook_deliveries, name="webhooks"),
    path("jobs/<int:job_id>/log.txt", job_results.job_log_download, name="job_log_download"),
    path("jobs/<int:job_id>/outputs/<int:output_id>/", job_results.job_output_download,
         name="job_output_download"),
    path("blocks/", bank.blocks, name="blocks"),
    path("blocks/<int:block_id>/sell-back/", bank.block_sell_back_view,
         name="block_sell_back"),
    path("loans/", bank.loans, name="loans"),
    path("loans/<int:loan_id>/prepay/", bank.loan_prepay_view, name="loan_prepay"),
    path("provider/", provider.provider, name="provider"),
    path("provider/nodes/created/", provider.node_created, name="node_created"),
    path("provider/nodes/<int:node_id>/drain/", provider.node_drain, name="node_drain"),
]
