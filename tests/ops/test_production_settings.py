"""Production refuses to start insecure: each insecure setting stops a serving process
with DJANGO_DEBUG off, naming the setting; docker/compose.yaml's environment passes
`manage.py check --deploy` without a warning; pages carry the CSP."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from marketplace.content_security import stripe_directives
from suanli_agent.__main__ import main as agent_main
from suanli_agent.config import plain_http_refusal

ROOT = Path(__file__).resolve().parents[2]

SECURE = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "a-production-secret-" + "x" * 40,
    "DJANGO_ALLOWED_HOSTS": "suanli.example",
    "STRIPE_SECRET_KEY": "sk_live_example",
    "STRIPE_WEBHOOK_SECRET": "whsec_example",
    "PAYMENTS_GATEWAY": "",
    "DJANGO_HTTPS": "true",
}


def _run(args: list[str], **overrides: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "STRIPE_"))}
    env.pop("PAYMENTS_GATEWAY", None)
    merged: dict[str, str | None] = {**env, **SECURE, **overrides}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={k: v for k, v in merged.items() if v is not None},  # None: unset
    )


def _start_web(**overrides: str | None) -> subprocess.CompletedProcess[str]:
    return _run(["-c", "import config.wsgi"], **overrides)


def test_a_secure_production_environment_starts():
    result = _start_web()
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"DJANGO_SECRET_KEY": None}, "DJANGO_SECRET_KEY is missing or a known development"),
        ({"DJANGO_SECRET_KEY": "dev-only-insecure-key-change-me"}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": "change-me-in-production"}, "DJANGO_SECRET_KEY"),
        ({"STRIPE_SECRET_KEY": "", "STRIPE_WEBHOOK_SECRET": ""}, "PAYMENTS_GATEWAY: with no"),
        ({"STRIPE_WEBHOOK_SECRET": ""}, "STRIPE_WEBHOOK_SECRET is empty while Stripe is on"),
        ({"DJANGO_ALLOWED_HOSTS": "*"}, "DJANGO_ALLOWED_HOSTS is '*'"),
    ],
    ids=["no-secret-key", "dev-secret-key", "example-secret-key", "fake-gateway",
         "empty-webhook-secret", "any-host"],
)
def test_an_insecure_setting_refuses_startup_naming_it(overrides, named):
    result = _start_web(**overrides)
    assert result.returncode == 1
    assert "ImproperlyConfigured: Refusing to start with DJANGO_DEBUG off" in result.stderr
    assert named in result.stderr


def test_the_fake_gateway_asked_for_by_name_starts():
    result = _start_web(STRIPE_SECRET_KEY="", STRIPE_WEBHOOK_SECRET="", PAYMENTS_GATEWAY="fake")
    assert result.returncode == 0, result.stderr


def test_the_celery_worker_refuses_too():
    result = _run(["-m", "celery", "-A", "config", "worker", "--pool", "solo"],
                  DJANGO_SECRET_KEY=None, CELERY_BROKER_URL="memory://")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is missing" in result.stderr + result.stdout


def test_debug_on_starts_with_every_development_default():
    result = _start_web(DJANGO_DEBUG="true", DJANGO_SECRET_KEY=None, STRIPE_SECRET_KEY="",
                        STRIPE_WEBHOOK_SECRET="", DJANGO_ALLOWED_HOSTS="*")
    assert result.returncode == 0, result.stderr


def _compose_environment() -> dict[str, str]:
    """x-app's environment as compose would fill it: required variables given, the rest
    at their defaults."""
    given = {"DJANGO_SECRET_KEY": SECURE["DJANGO_SECRET_KEY"],
             "STRIPE_SECRET_KEY": SECURE["STRIPE_SECRET_KEY"],
             "STRIPE_WEBHOOK_SECRET": SECURE["STRIPE_WEBHOOK_SECRET"]}
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    pattern = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")

    def fill(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if name in given:
            return given[name]
        assert kind != "?", f"compose requires {name}"
        return rest or ""

    return {k: pattern.sub(fill, str(v)) for k, v in compose["x-app"]["environment"].items()}


def test_check_deploy_is_clean_with_the_compose_production_environment():
    environment = _compose_environment()
    assert "DJANGO_DEBUG" not in environment  # off by default
    # Nothing to connect to here: check --deploy reads settings, not the database.
    environment["DATABASE_URL"] = os.environ.get("DATABASE_URL", environment["DATABASE_URL"])
    environment["REDIS_URL"] = os.environ.get("REDIS_URL", environment["REDIS_URL"])
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                  DJANGO_HTTPS=None, **environment)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_reports_insecure_settings_as_errors():
    result = _run(["manage.py", "check", "--deploy"], DJANGO_ALLOWED_HOSTS="*")
    assert result.returncode == 1
    assert "suanli.E001" in result.stderr
    assert "DJANGO_ALLOWED_HOSTS is '*'" in result.stderr


@pytest.mark.django_db
def test_pages_carry_a_csp_that_allows_stripe_js_and_nothing_else_external(client, settings):
    settings.STRIPE_JS_URL = "https://js.stripe.com/v3/"
    policy = client.get("/login/")["Content-Security-Policy"]
    directives = dict(
        (part.split()[0], part.split()[1:]) for part in policy.split("; ")
    )
    assert directives["script-src"] == ["'self'", "https://js.stripe.com"]
    assert directives["frame-src"] == ["'self'", "https://js.stripe.com",
                                       "https://hooks.stripe.com"]
    assert directives["connect-src"] == ["'self'", "https://api.stripe.com"]
    assert directives["default-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    external = {s for sources in directives.values() for s in sources
                if s.startswith(("http:", "https:"))}
    assert external == {"https://js.stripe.com", "https://hooks.stripe.com",
                        "https://api.stripe.com"}


def test_a_local_stripe_js_is_allowed_by_its_own_origin():
    assert stripe_directives("http://127.0.0.1:8420/js.stripe.com/v3/") == {
        "script-src": ["http://127.0.0.1:8420"], "frame-src": ["http://127.0.0.1:8420"],
        "connect-src": ["http://127.0.0.1:8420"],
    }
    assert stripe_directives("javascript:alert(1)") == {}


@pytest.mark.parametrize(
    ("server", "insecure", "refused"),
    [
        ("https://suanli.example", False, False),
        ("http://127.0.0.1:8000", False, False),
        ("http://localhost:8000", False, False),
        ("http://[::1]:8000", False, False),
        ("http://suanli.example", False, True),
        ("http://10.0.0.5:8001", False, True),
        ("http://suanli.example", True, False),
        ("ftp://suanli.example", True, True),
    ],
)
def test_the_agent_speaks_plain_http_only_to_its_own_machine(server, insecure, refused):
    assert (plain_http_refusal(server, insecure_http=insecure) is not None) is refused


def test_the_agent_exits_on_a_remote_plain_http_server(capsys, monkeypatch):
    monkeypatch.setenv("SUANLI_NODE_TOKEN", "t")
    assert agent_main(["--server", "http://suanli.example"]) == 2
    assert "refusing plain http:// to suanli.example" in capsys.readouterr().err
