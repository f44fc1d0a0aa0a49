"""/downloads/: the node agent's wheel for providers' GPU machines, open to anyone, built
from this server's agent/ on the first request and kept per state of that source."""

import io
import tempfile
import zipfile
from pathlib import Path

import pytest

from marketplace.agent_wheel import AGENT_VERSION, agent_source_digest

# Shared by test runs: each build lives in a folder named after its source's digest.
WHEELS = Path(tempfile.gettempdir()) / "suanli-test-agent-wheels"
WHEEL = f"suanli_agent-{AGENT_VERSION}-py3-none-any.whl"


@pytest.fixture
def wheels(settings):
    settings.AGENT_WHEEL_DIR = str(WHEELS)
    return WHEELS


def test_anyone_downloads_the_agents_wheel_with_httpx_its_only_dependency(client, wheels):
    response = client.get(f"/downloads/{WHEEL}")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="{WHEEL}"'
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = set(archive.namelist())
    assert "suanli_agent/workload_spec.py" in names
    assert "suanli_agent/__main__.py" in names
    assert not [n for n in names if n.startswith(("scheduler/", "banking/", "marketplace/",
                                                   "core/", "config/"))]
    metadata = archive.read(f"suanli_agent-{AGENT_VERSION}.dist-info/METADATA").decode()
    assert [line for line in metadata.splitlines() if line.startswith("Requires-Dist")] == [
        "Requires-Dist: httpx>=0.27"]
    entry_points = archive.read(f"suanli_agent-{AGENT_VERSION}.dist-info/entry_points.txt")
    assert b"suanli-agent = suanli_agent.__main__:main" in entry_points
    assert (wheels / agent_source_digest() / WHEEL).is_file()


def test_the_short_name_leads_to_the_name_pip_accepts(client, wheels):
    response = client.get(f"/downloads/suanli-agent-{AGENT_VERSION}.whl")
    assert response.status_code == 302
    assert response["Location"] == f"/downloads/{WHEEL}"


@pytest.mark.parametrize("path", [
    "/downloads/suanli_agent-9.9.9-py3-none-any.whl",
    "/downloads/suanli-agent-0.0.1.whl",
    "/downloads/suanli_agent-..%2F..%2Fsettings-py3-none-any.whl",
])
def test_another_version_is_not_offered_and_nothing_is_built(client, settings, tmp_path, path):
    settings.AGENT_WHEEL_DIR = str(tmp_path / "wheels")
    assert client.get(path).status_code == 404
    assert not (tmp_path / "wheels").exists()


def test_only_reads_are_allowed(client, wheels):
    assert client.post(f"/downloads/{WHEEL}").status_code == 405
