"""Members in a real browser: an owner adds a colleague, who sets a password from the
emailed link and signs in; a member of two organizations switches between them."""

import re

import pytest
from django.core import mail

from banking.models import Membership
from banking.services.customers import organization_signup
from tests.e2e.conftest import UI

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

PASSWORD = "correct-horse-42"


def test_an_added_member_sets_a_password_from_the_email_and_signs_in(ui: UI) -> None:
    org = organization_signup(name="Team Co", email="owner@team.example",
                              password=PASSWORD).organization
    ui.sign_in("owner@team.example", PASSWORD)

    ui.goto("/members/", "members")
    ui.page.fill("#id_email", "colleague@team.example")
    ui.page.select_option("#id_role", "admin")
    ui.page.click("button:has-text('Add member')")
    ui.page.wait_for_load_state()
    ui.shot("member added")
    assert "colleague@team.example was added as admin" in ui.page.inner_text(".messages")
    assert "colleague@team.example" in ui.page.inner_text("table")

    assert len(mail.outbox) == 1
    link = re.search(r"https?://\S+/password-reset/\S+/", str(mail.outbox[0].body))
    assert link is not None
    ui.page.click("button:has-text('Log out')")
    ui.page.wait_for_load_state()

    ui.page.goto(link.group(0))
    ui.page.wait_for_load_state()
    ui.shot("choose a password")
    ui.page.fill("#id_new_password1", "colleague-pass-77")
    ui.page.fill("#id_new_password2", "colleague-pass-77")
    ui.page.click("button:has-text('Set password')")
    ui.page.wait_for_load_state()
    ui.shot("password set")
    ui.sign_in("colleague@team.example", "colleague-pass-77")
    assert "Team Co" in ui.page.inner_text("header")
    assert Membership.objects.get(organization=org, user__email="colleague@team.example").role \
        == Membership.Role.ADMIN


def test_a_member_of_two_organizations_switches_from_the_header(ui: UI) -> None:
    first = organization_signup(name="Alpha Compute", email="dual@alpha.example",
                                password=PASSWORD)
    second = organization_signup(name="Beta GPUs", email="beta-owner@beta.example",
                                 password=PASSWORD, is_buyer=False, is_provider=True)
    Membership.objects.create(organization=second.organization, user=first.user,
                              role=Membership.Role.DEVELOPER)
    ui.sign_in("dual@alpha.example", PASSWORD)
    assert "Provider" not in ui.page.inner_text("nav.main-nav")

    ui.page.click("details.org-switch summary")
    ui.shot("switcher open", full_page=False)
    ui.page.click("details.org-switch button:has-text('Beta GPUs')")
    ui.page.wait_for_load_state()
    ui.shot("switched")

    assert "Beta GPUs" in ui.page.inner_text("details.org-switch summary")
    assert "Provider" in ui.page.inner_text("nav.main-nav")
    assert "now acting for Beta GPUs" in ui.page.inner_text(".messages")
