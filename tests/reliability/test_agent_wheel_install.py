"""The node agent as a provider installs it: a fresh virtualenv with no Django, `pip install`
of the wheel this server offers at /downloads/, then a simulated node run from that
install, against the live server and a real Celery worker, serves a buyer's job to success."""

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from banking.selectors import wallet_get
from banking.services.customers import api_key_issue
from marketplace.agent_wheel import AGENT_VERSION
from scheduler.models import Assignment, Job, Node
from scheduler.pricing import charge_for
from tests.live import wait_until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.worker,
    pytest.mark.slow,
    pytest.mark.xdist_group("live-worker"),
]

FUNDS = 10_000_000_000
# Shared by test runs: each build lives in a folder named after its source's digest.
WHEELS = Path(tempfile.gettempdir()) / "suanli-test-agent-wheels"


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=300,
                          check=False)


def test_the_wheel_from_downloads_installs_without_django_and_serves_a_job(
        make_org, celery_worker, start_agent, live_server, settings, tmp_path):
    settings.AGENT_WHEEL_DIR = str(WHEELS)
    # Given a fresh virtualenv that has none of this repository: no path to the checkout,
    # no Django
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    venv = tmp_path / "gpu-machine"
    made = _run(sys.executable, "-m", "venv", str(venv), env=env)
    assert made.returncode == 0, made.stderr
    python = str(venv / "bin" / "python")
    assert _run(python, "-c", "import django", env=env).returncode == 1

    # When the provider runs the portal's install line against this server
    url = f"{live_server.url}/downloads/suanli_agent-{AGENT_VERSION}-py3-none-any.whl"
    installed = _run(python, "-m", "pip", "install", "--quiet", url, env=env)
    assert installed.returncode == 0, installed.stderr

    # Then the agent and httpx are there, and still no Django
    where = _run(python, "-c", "import suanli_agent; print(suanli_agent.__file__)", env=env)
    assert where.stdout.strip().startswith(str(venv)), where
    assert _run(python, "-c", "import django", env=env).returncode == 1
    requires = _run(python, "-m", "pip", "show", "suanli-agent", env=env).stdout
    assert f"Version: {AGENT_VERSION}" in requires
    assert "Requires: httpx\n" in requires

    # And a simulated node run from that install serves a buyer's job to success
    provider = make_org(provider=True, buyer=False)
    buyer = make_org(tokens=FUNDS)
    start_agent(api_key_issue(organization_id=provider.pk).secret, nodes=1, gpus=2,
                prefix="wheel", installed=venv / "bin" / "suanli-agent")
    wait_until(lambda: Node.objects.filter(provider=provider, status="online").count() == 1,
               60, "the installed agent's node online")
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Api-Key {api_key_issue(organization_id=buyer.pk).secret}")
    response = client.post("/api/v1/jobs/", {
        "spec": {"simulate": {"seconds": 2}}, "gpu_class": "H100-80GB", "gpu_count": 2,
        "max_duration_s": 600}, format="json")
    assert response.status_code == 201, response.content
    job_id = response.json()["id"]
    wait_until(lambda: Job.objects.get(pk=job_id).state == "succeeded", 120,
               "the job to succeed on the installed agent")
    (assignment,) = Assignment.objects.filter(job_id=job_id)
    assert assignment.state == "completed"
    assert assignment.node.provider_id == provider.pk
    assert assignment.node.name.startswith("wheel-")
    assert assignment.gpu_seconds >= 4
    wait_until(lambda: wallet_get(organization_id=buyer.pk).held == 0, 30, "the hold released")
    charged = charge_for(assignment.gpu_seconds, assignment.rate_per_gpu_hour)
    assert wallet_get(organization_id=buyer.pk).available == FUNDS - charged
