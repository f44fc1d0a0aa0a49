"""Browser tests: Python Playwright drives the Debian Chromium at /usr/bin/chromium,
headless, against pytest-django's live server on PostgreSQL.

Each test gets `ui`, a page with helpers; every page it visits (and every `ui.shot()`)
is saved as a PNG under `screenshots/<test name>/` at the repository root (git-ignored),
so a person can look at what the test saw. Mark browser tests with
`pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]`; they skip,
saying why, when Chromium is not installed.
"""

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
# still synchronous.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path(os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def _skip_reason() -> str | None:
    if not CHROMIUM.exists():
        return f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


class UI:
    """One browser tab on the live server, saving a screenshot of each page it shows."""

    def __init__(self, page: Any, base_url: str, folder: Path) -> None:
        self.page = page
        self.base_url = base_url
        self.folder = folder
        self.count = 0
        # What the Content-Security-Policy blocked, as Chromium reports it on the console.
        self.csp_violations: list[str] = []
        page.on("console", self._note_csp_violation)

    def _note_csp_violation(self, message: Any) -> None:
        if "Content Security Policy" in message.text:
            self.csp_violations.append(message.text)

    def url(self, path: str) -> str:
        return self.base_url + path

    def goto(self, path: str, label: str | None = None) -> Any:
        response = self.page.goto(self.url(path))
        self.shot(label or path)
        return response

    def shot(self, label: str, *, full_page: bool = True) -> Path:
        self.count += 1
        name = re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-") or "page"
        path = self.folder / f"{self.count:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def click_and_shot(self, selector: str, label: str) -> None:
        self.page.click(selector)
        self.page.wait_for_load_state()
        self.shot(label)

    def sign_up(self, organization: str, email: str, password: str,
                kind: str = "buyer") -> None:
        """Sign up a new organization and its owner; ends on the wallet."""
        self.goto("/signup/", "signup")
        self.page.fill("#id_organization_name", organization)
        self.page.check(f"input[name=kind][value={kind}]")
        self.page.fill("#id_email", email)
        self.page.fill("#id_password1", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(re.compile(r".*/wallet/$"))
        self.confirm_email(email)

    def confirm_email(self, email: str) -> None:
        """Follow the link of the confirmation email sent to `email` (the live server
        runs in this process: its mail is in Django's test outbox); ends on the wallet."""
        from django.core import mail

        sent = [m for m in mail.outbox if email in m.to and "confirm" in m.subject.lower()]
        found = re.search(r"https?://\S+/accounts/confirm-email/\S+/", str(sent[-1].body))
        assert found is not None, sent[-1].body
        self.page.goto(found.group(0))
        self.page.wait_for_load_state()
        self.goto("/wallet/", "email confirmed")

    def sign_in(self, email: str, password: str) -> None:
        self.goto("/login/", "login")
        self.page.fill("#id_login", email)
        self.page.fill("#id_password", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(re.compile(r".*/wallet/$"))
        self.shot("signed in")


    def enrol_totp(self, password: str) -> str:
        """Turn on an authenticator app for the signed-in user through allauth's pages,
        confirming the password first when allauth asks for it (unless it was confirmed
        again in the last few minutes, a login alone does not count); returns the secret."""
        self.goto("/accounts/2fa/totp/activate/", "activate authenticator")
        if "/accounts/reauthenticate/" in self.page.url:
            self.page.fill("#id_password", password)
            self.page.click("main button[type=submit]")
            self.page.wait_for_url(re.compile(r".*/accounts/2fa/totp/activate/$"))
            self.shot("activate authenticator after the password")
        secret = str(self.page.input_value("#authenticator_secret"))
        self.page.fill("#id_code", totp_code(secret))
        self.page.click("main button[type=submit]")
        self.page.wait_for_load_state()
        self.shot("authenticator on")
        return secret


def totp_code(secret: str, step: int = 0) -> str:
    """The code an authenticator app shows for `secret` now (or `step` periods on)."""
    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    return str(format_hotp_value(hotp_value(secret, int(time.time()) // 30 + step)))


def _ui(browser: Any, live_server: Any, request: pytest.FixtureRequest,
        viewport: dict[str, int], suffix: str = "") -> Iterator[UI]:
    folder = SCREENSHOTS / (re.sub(r"[^A-Za-z0-9_]+", "-", request.node.name) + suffix)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    context = browser.new_context(viewport=viewport, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield UI(page, live_server.url, folder)
    finally:
        context.close()


@pytest.fixture
def ui(browser: Any, live_server: Any, transactional_db: None,
       request: pytest.FixtureRequest) -> Iterator[UI]:
    yield from _ui(browser, live_server, request, DESKTOP)


@pytest.fixture
def phone_ui(browser: Any, live_server: Any, transactional_db: None,
             request: pytest.FixtureRequest) -> Iterator[UI]:
    yield from _ui(browser, live_server, request, PHONE, "-phone")
