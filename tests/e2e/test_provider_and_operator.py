"""A provider registers a node, runs the agent command it is shown, deposits capacity
once the agent has reported the node's GPUs and sees earnings accrue; an operator
approves a payout and posts a reversal in Django admin."""

import os
import re
import signal
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib.auth.models import User
from django.utils import timezone

from banking.fiat_display import usd_text
from banking.models import Organization, Payout, Transfer
from banking.selectors import wallet_get
from banking.services.customers import (
    organization_approve,
    organization_create,
    organization_signup,
)
from banking.services.ledger import grant_post
from banking.services.payouts import payout_account_set, payout_request
from marketplace.services.deposits import yield_accrue
from scheduler.models import Node, NodeHeartbeat
from scheduler.services.nodes import node_approve
from suanli_agent import AGENT_VERSION
from tests.e2e.conftest import UI, totp_code
from tests.earnings import earn
from tests.live import ROOT, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]
PASSWORD = "correct-horse-42"


def test_a_provider_registers_a_node_deposits_capacity_and_sees_earnings(
        ui: UI, tmp_path: Path) -> None:
    org = organization_signup(name="Rack Owners", email="ops@rack.example", password=PASSWORD,
                              is_buyer=False, is_provider=True).organization
    ui.sign_in("ops@rack.example", PASSWORD)
    ui.goto("/provider/", "portal")
    form = "form:has(input[name=form][value=node])"
    ui.page.fill(f"{form} #id_name", "vault-1")
    ui.page.select_option(f"{form} #id_gpu_class", "H100-80GB")
    ui.page.fill(f"{form} #id_gpu_count", "4")
    ui.page.select_option(f"{form} #id_mode", "bank")
    ui.page.click(f"{form} button[type=submit]")
    ui.page.wait_for_url(re.compile(r".*/provider/nodes/created/$"))
    ui.shot("token and command")
    token = ui.page.input_value("[data-testid=node-token]")
    command = ui.page.input_value("[data-testid=agent-command]")
    assert token.startswith("nt_")
    assert ui.page.input_value("[data-testid=agent-install]") == (
        f"pip install {ui.base_url}/downloads/suanli_agent-{AGENT_VERSION}-py3-none-any.whl")
    assert command == (f"(umask 077 && printf '%s' '{token}' > suanli-node-token) && "
                       f"suanli-agent --server {ui.base_url} "
                       "--token-file suanli-node-token")

    node = Node.objects.get(provider=org, name="vault-1")
    organization_approve(organization_id=org.pk)  # an operator approves the provider
    node_approve(node_id=node.pk)  # and its node
    start = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)

    def deposit_four_gpus(label: str) -> None:
        ui.goto("/provider/", label)
        form = "form:has(input[name=form][value=deposit])"
        ui.page.select_option(f"{form} #id_node", str(node.pk))
        ui.page.fill(f"{form} #id_gpu_count", "4")
        ui.page.fill(f"{form} #id_start", start.strftime("%Y-%m-%dT%H:%M"))
        ui.page.fill(f"{form} #id_end",
                     (start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
        ui.page.click(f"{form} button[type=submit]")
        ui.page.wait_for_load_state()

    # Until its agent has listed the node's GPUs, the bank takes no deposit on it
    deposit_four_gpus("portal with node")
    ui.shot("deposit refused")
    assert "The node's agent reports 0 GPUs" in ui.page.inner_text("main")
    assert org.deposits.count() == 0

    # The provider runs the command it was shown (this machine has no nvidia-smi, so it
    # names its GPUs); the agent's heartbeat lists them
    agent = subprocess.Popen(
        f"{command} --gpus 4 --gpu-class H100-80GB --heartbeat-s 1 --container-runtime none",
        shell=True, cwd=tmp_path, start_new_session=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "agent"), str(ROOT)]),
             "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: Node.objects.get(pk=node.pk).gpus_reported == 4, 30,
                   "the agent's heartbeat listing 4 GPUs")
    finally:
        os.killpg(agent.pid, signal.SIGTERM)
        agent.wait(timeout=15)
    assert stat.S_IMODE((tmp_path / "suanli-node-token").stat().st_mode) == 0o600

    deposit_four_gpus("portal with a reporting node")
    assert ui.page.url.endswith("/provider/")
    ui.shot("deposited")
    deposit = org.deposits.get()

    # Time passes: the node heartbeats through the first hour, the accrual task runs.
    NodeHeartbeat.objects.bulk_create([
        NodeHeartbeat(node=node, at=start + timedelta(minutes=m), free_gpus=0, busy_gpus=4)
        for m in range(60)])
    yield_accrue(now=start + timedelta(hours=1))
    ui.page.reload()
    ui.shot("earnings accrued")
    deposit.refresh_from_db()
    assert deposit.earned == deposit.total_yield // 2
    earned = ui.page.inner_text(f"[data-testid=earned-{deposit.pk}]").splitlines()
    assert earned == [f"{deposit.earned:,}", usd_text(deposit.earned)]  # tokens, then $
    assert wallet_get(organization_id=org.pk).available == deposit.earned


def test_an_operator_approves_a_payout_and_posts_a_reversal_in_admin(ui: UI) -> None:
    operator = User.objects.create_superuser("operator", "op@suanli.example", PASSWORD)
    # The admin opens only after a second factor: the operator's authenticator app is
    # set up beforehand with allauth's own model (enrolling through the pages is
    # test_account_security's subject), and the browser signs in with password and code.
    secret = generate_totp_secret()
    TOTP.activate(operator, secret)
    provider = organization_create(name="Payee", is_buyer=False, is_provider=True)
    earn(provider.pk, 50_000_000)
    payout_account_set(organization_id=provider.pk, stripe_account_id="acct_test_payee")
    payout = payout_request(organization_id=provider.pk, tokens=20_000_000,
                            idempotency_key="p1")
    mistake = grant_post(organization_id=provider.pk, amount=1_234, reason="posted twice")

    ui.goto("/admin/", "admin sends to the login")
    ui.page.wait_for_url(re.compile(r".*/login/\?next=/admin/$"))
    ui.page.fill("#id_login", "operator")
    ui.page.fill("#id_password", PASSWORD)
    ui.page.click("button[type=submit]")
    ui.page.wait_for_url(re.compile(r".*/accounts/2fa/authenticate/$"))
    ui.shot("asked for a code")
    ui.page.fill("#id_code", totp_code(secret))
    ui.page.click("main button[type=submit]")
    ui.page.wait_for_url(re.compile(r".*/admin/$"))
    ui.shot("admin dashboard")

    ui.goto("/admin/banking/payout/", "payouts")
    ui.page.check(f"input[name=_selected_action][value='{payout.pk}']")
    ui.page.select_option("select[name=action]", "approve")
    ui.page.click("button[name=index]")
    ui.page.wait_for_load_state()
    ui.shot("payout approved")
    payout.refresh_from_db()
    assert payout.status in ("approved", "paid")

    ui.goto("/admin/banking/transfer/", "transfers")
    ui.page.check(f"input[name=_selected_action][value='{mistake.pk}']")
    ui.page.select_option("select[name=action]", "post_reversal")
    ui.page.click("button[name=index]")
    ui.page.wait_for_load_state()
    ui.shot("reversal posted")
    assert Transfer.objects.filter(reverses=mistake).count() == 1
    assert Organization.objects.filter(pk=provider.pk).exists()
    assert Payout.objects.filter(pk=payout.pk).count() == 1
