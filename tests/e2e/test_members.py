"""Members in a real browser: an owner adds a colleague, who opens an account from the
emailed invitation, confirms the address and signs in; a member of two organizations
switches between them."""

import re

import pytest
from django.contrib.auth.models import User
from django.core import mail

from banking.models import Invitation, Membership
from banking.services.customers import organization_signup
from tests.e2e.conftest import UI

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

PASSWORD = "correct-horse-42"


def test_an_added_member_sets_a_password_from_the_email_and_signs_in(ui: UI) -> None:
    org = organization_signup(name="Team Co", email="owner@team.example",
                              password=PASSWORD).organization
    ui.sign_in("owner@team.example", PASSWORD)

    # Given an owner who adds an address that has no account: an invitation, no user
    ui.goto("/members/", "members")
    ui.page.fill("#id_email", "colleague@team.example")
    ui.page.select_option("#id_role", "admin")
    ui.page.click("button:has-text('Add member')")
    ui.page.wait_for_load_state()
    ui.shot("member invited")
    assert "colleague@team.example was invited as admin" in ui.page.inner_text(".messages")
    assert "colleague@team.example" in ui.page.inner_text("table")
    assert not User.objects.filter(email="colleague@team.example").exists()

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["colleague@team.example"]
    link = re.search(r"https?://\S+/invitations/\S+/", str(mail.outbox[0].body))
    assert link is not None
    ui.page.click("button:has-text('Log out')")
    ui.page.wait_for_load_state()

    # When the colleague opens the emailed link and chooses a password for that address
    ui.page.goto(link.group(0))
    ui.page.wait_for_load_state()
    ui.shot("open an account")
    assert "Join Team Co" in ui.page.inner_text("main")
    assert ui.page.input_value("#id_email") == "colleague@team.example"
    assert ui.page.is_disabled("#id_email")
    ui.page.fill("#id_password1", "colleague-pass-77")
    ui.page.click("button:has-text('Open my account')")
    ui.page.wait_for_url(re.compile(r".*/accounts/confirm-email/$"))
    ui.shot("confirmation sent")

    # Then it is not a member, and cannot sign in, until it confirms the address
    assert not Membership.objects.filter(user__email="colleague@team.example").exists()
    ui.goto("/login/", "login before confirming")
    ui.page.fill("#id_login", "colleague@team.example")
    ui.page.fill("#id_password", "colleague-pass-77")
    ui.page.click("button[type=submit]")
    ui.page.wait_for_url(re.compile(r".*/accounts/confirm-email/$"))
    ui.shot("refused until confirmed")
    assert "Team Co" not in ui.page.inner_text("header")
    assert not Membership.objects.filter(user__email="colleague@team.example").exists()

    # And once it follows the confirmation email's link and signs in, it is in Team Co
    ui.page.context.clear_cookies()
    ui.confirm_email("colleague@team.example")
    ui.page.context.clear_cookies()
    ui.sign_in("colleague@team.example", "colleague-pass-77")
    assert "Team Co" in ui.page.inner_text("header")
    assert Membership.objects.get(organization=org, user__email="colleague@team.example").role \
        == Membership.Role.ADMIN
    assert Invitation.objects.get(organization=org).accepted_at is not None


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
