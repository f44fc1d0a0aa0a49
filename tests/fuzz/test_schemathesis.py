"""The API fuzzed against its own served schema by Schemathesis (all checks, the stateful
phase), as a buyer, as a provider and as a node's agent, against a live server on
PostgreSQL: no answer may be a server error or contradict the schema, and the ledger's
invariants hold afterwards. Bounded (a fixed seed, a few dozen examples per operation) so
that it runs in `make test`; Schemathesis writes nothing into the tree (its reports go to
the test's temporary directory, its example database is off)."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from banking.services.customers import api_key_issue, organization_create
from banking.services.ledger import grant_post
from scheduler.services.nodes import node_heartbeat, node_register

pytestmark = [pytest.mark.serial, pytest.mark.django_db(transaction=True)]

SEED = 20261204
EXAMPLES = 25
# What the run must never find: the server failing, or answering other than it documents.
FORBIDDEN = frozenset({
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_headers_conformance", "response_schema_conformance",
})
AGENT = r"^/api/v1/agent/"
# Pages and binary downloads reached by a signed token only, not by the API's credentials.
NOT_API = r"^/api/v1/objects/"


def _schemathesis(schema_url: str, authorization: str, include: str | None,
                  exclude: str, report: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", schema_url,
        "--checks", "all", "--seed", str(SEED), "--max-examples", str(EXAMPLES),
        "--phases", "examples,coverage,fuzzing,stateful", "--workers", "2",
        "--generation-database", "none", "--request-timeout", "30",
        "--suppress-health-check", "all", "--no-color",
        "--header", f"Authorization: {authorization}",
        "--report", "ndjson", "--report-ndjson-path", str(report),
        "--exclude-path-regex", exclude,
    ]
    if include:
        command += ["--include-path-regex", include]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=1500,
                          env={**os.environ, "NO_COLOR": "1"})


def _failures(report: Path) -> list[dict[str, Any]]:
    """Every failed check of the run (its event stream): the check, the operation and
    the request that made it fail, and what Schemathesis said."""
    found: list[dict[str, Any]] = []
    for line in report.read_text().splitlines():
        scenario = json.loads(line).get("ScenarioFinished")
        if scenario is None:
            continue
        recorder = scenario["recorder"]
        for case_id, checks in recorder.get("checks", {}).items():
            case = recorder["cases"].get(case_id, {}).get("value", {})
            found += [{
                "check": check["name"], "operation": recorder["label"],
                "request": {k: case.get(k) for k in ("method", "path", "path_parameters",
                                                      "query", "body")},
                "failure": check.get("failure_info", {}).get("failure", {}),
            } for check in checks if check["status"] == "failure"]
    return found


@pytest.fixture
def credentials(settings: Any) -> dict[str, str]:
    # The fuzzer presents many wrong credentials on purpose (its ignored_auth check):
    # throttling them would turn the rest of the run into 429s, testing nothing.
    settings.CREDENTIAL_FAILURES_PER_WINDOW = 10**9
    buyer = organization_create(name="fuzz-buyer", is_buyer=True, is_provider=False)
    grant_post(organization_id=buyer.pk, amount=10_000_000, reason="fuzzing funds")
    provider = organization_create(name="fuzz-provider", is_buyer=False, is_provider=True)
    registered = node_register(provider_id=provider.pk, name="fuzz-node",
                               gpu_class="H100-80GB", gpu_count=8, region="eu-west")
    node_heartbeat(node_id=registered.node.pk, free_gpus=8, busy_gpus=0, utilization=0.0,
                   agent_version="fuzz")
    return {
        "buyer": f"Api-Key {api_key_issue(organization_id=buyer.pk).secret}",
        "provider": f"Api-Key {api_key_issue(organization_id=provider.pk).secret}",
        "node": f"Node {registered.token}",
    }


def test_the_api_holds_under_schemathesis(live_server: Any, credentials: dict[str, str],
                                          tmp_path: Path) -> None:
    schema_url = f"{live_server.url}/api/v1/schema/"
    runs = {
        "buyer": (None, f"{AGENT}|{NOT_API}"),
        "provider": (None, f"{AGENT}|{NOT_API}"),
        "node": (AGENT, NOT_API),
    }
    failures: list[tuple[str, dict[str, Any]]] = []
    for who, (include, exclude) in runs.items():
        report = tmp_path / f"{who}.ndjson"
        done = _schemathesis(schema_url, credentials[who], include, exclude, report, tmp_path)
        assert report.exists(), done.stdout[-4000:] + done.stderr[-4000:]
        failures += [(who, f) for f in _failures(report)]
        (tmp_path / f"{who}.out").write_text(done.stdout + done.stderr)

    by_check = Counter(f["check"] for _, f in failures)
    forbidden = [(who, f) for who, f in failures if f["check"] in FORBIDDEN]
    # The other checks' findings (valid data refused by a business rule, say) are
    # printed for whoever reads the run, not failed on.
    print(f"schemathesis failures by check: {dict(by_check)}")
    for who, failure in forbidden:
        print(who, json.dumps(failure, default=str)[:2000])
    assert forbidden == [], f"{len(forbidden)} server errors or schema violations: " \
                            f"{dict(Counter(f['check'] for _, f in forbidden))}"
    call_command("verify_ledger")
