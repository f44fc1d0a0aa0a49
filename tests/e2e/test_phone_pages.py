"""Every main page at phone width (390 px): nothing scrolls sideways."""

import pytest

from banking.services.customers import organization_signup
from banking.services.ledger import grant_post
from tests.e2e.conftest import UI

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


def test_the_main_pages_fit_a_phone(phone_ui: UI) -> None:
    org = organization_signup(name="Both Sides", email="sam@both.example",
                              password="correct-horse-42", is_buyer=True,
                              is_provider=True).organization
    grant_post(organization_id=org.pk, amount=1_000_000, reason="funds")
    phone_ui.sign_in("sam@both.example", "correct-horse-42")
    for path in ("/catalog/", "/jobs/", "/blocks/", "/loans/", "/provider/", "/wallet/"):
        phone_ui.goto(path, f"{path} at 390px")
        overflow = phone_ui.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow == 0, path


FIT = "document.scrollingElement.scrollWidth"
BUYER_SECTIONS = ["Catalog", "Wallet", "Jobs", "Blocks", "Loans", "API keys", "Members"]
PROVIDER_SECTIONS = ["Catalog", "Wallet", "Provider", "API keys", "Members"]


def _fits(ui: UI, path: str) -> None:
    response = ui.goto(path, f"{path} at 390px")
    assert response.status < 400, path
    assert ui.page.evaluate(FIT) <= 390, path


def _menu_sections(ui: UI) -> list[str]:
    """The navigation is behind the Menu button at phone width: open it, read it."""
    nav = ui.page.locator("#main-nav")
    assert not nav.is_visible()
    ui.page.click("[data-testid=menu-toggle]")
    assert nav.is_visible()
    ui.shot("menu open", full_page=False)
    links = [t.strip() for t in nav.locator("a").all_inner_texts()]
    assert ui.page.evaluate(FIT) <= 390
    return links


def test_every_page_of_the_seeded_demo_fits_a_phone_and_the_menu_has_every_section(
        phone_ui: UI, tmp_path) -> None:
    import json

    from django.core.management import call_command

    from marketplace.models import Block
    from scheduler.models import Job

    out = tmp_path / "demo.json"
    call_command("seed_demo", output=str(out))
    demo = json.loads(out.read_text())
    for path in ("/", "/catalog/", "/login/", "/signup/"):
        _fits(phone_ui, path)

    phone_ui.sign_in("buyer@suanli.local", "suanli-admin")
    assert _menu_sections(phone_ui) == BUYER_SECTIONS
    job = Job.objects.get(organization_id=demo["buyer"]["organization_id"])
    block = Block.objects.get(organization_id=demo["buyer"]["organization_id"])
    for path in ("/wallet/", "/wallet/?view=ledger", "/jobs/", f"/jobs/{job.pk}/",
                 f"/jobs/?block={block.pk}", "/blocks/", "/loans/", "/api-keys/",
                 "/members/", "/catalog/"):
        _fits(phone_ui, path)
    # a financed quote with its schedule, and a confirmation page
    phone_ui.goto("/blocks/")
    phone_ui.page.fill("#id_gpu_count", "2")
    phone_ui.page.fill("#id_start", block.end.strftime("%Y-%m-%dT%H:%M"))
    phone_ui.page.fill("#id_hours", "24")
    phone_ui.page.select_option("#id_payment", "financed")
    phone_ui.page.fill("#id_term_months", "12")
    phone_ui.page.click("[data-testid=get-quote]")
    phone_ui.page.wait_for_selector("[data-testid=schedule]")
    phone_ui.shot("financed quote at 390px")
    assert phone_ui.page.evaluate(FIT) <= 390
    phone_ui.page.click("[data-testid=confirm-block]")
    phone_ui.page.wait_for_url("**/blocks/?gpu_class=*")
    _fits(phone_ui, "/loans/")
    phone_ui.goto(f"/jobs/{job.pk}/")
    phone_ui.page.click("[data-testid=cancel-job]")
    phone_ui.page.wait_for_selector("[data-testid=confirm]")
    assert phone_ui.page.evaluate(FIT) <= 390
    phone_ui.page.click("text=Keep it running")
    phone_ui.page.click("form.logout-form button")

    phone_ui.sign_in("provider@suanli.local", "suanli-admin")
    assert _menu_sections(phone_ui) == PROVIDER_SECTIONS
    for path in ("/provider/", "/wallet/", "/api-keys/", "/members/"):
        _fits(phone_ui, path)
    # the seeded provider has a payout account: its payout waits for a second factor,
    # and the refusal, allauth's pages to turn one on and the confirmation all fit
    phone_ui.goto("/provider/")
    phone_ui.page.fill("#id_tokens", "20000000")
    phone_ui.page.click("button:has-text('Request payout')")
    phone_ui.page.wait_for_selector("[data-code=mfa_required]")
    assert phone_ui.page.evaluate(FIT) <= 390
    phone_ui.goto("/accounts/2fa/totp/activate/")
    assert "/accounts/reauthenticate/" in phone_ui.page.url
    assert phone_ui.page.evaluate(FIT) <= 390
    phone_ui.page.fill("#id_password", "suanli-admin")
    phone_ui.page.click("main button[type=submit]")
    phone_ui.page.wait_for_url("**/accounts/2fa/totp/activate/")
    phone_ui.shot("activate authenticator at 390px")
    assert phone_ui.page.evaluate(FIT) <= 390
    phone_ui.enrol_totp("suanli-admin")
    assert "/accounts/2fa/recovery-codes/" in phone_ui.page.url
    assert phone_ui.page.evaluate(FIT) <= 390
    _fits(phone_ui, "/accounts/2fa/")
    phone_ui.goto("/provider/")
    phone_ui.page.fill("#id_tokens", "20000000")
    phone_ui.page.click("button:has-text('Request payout')")
    phone_ui.page.wait_for_selector("[data-testid=confirm]")
    phone_ui.shot("payout confirm at 390px")
    assert phone_ui.page.evaluate(FIT) <= 390
