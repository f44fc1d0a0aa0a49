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
