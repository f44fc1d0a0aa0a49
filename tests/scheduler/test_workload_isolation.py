"""Buyers' commands only on nodes that isolate them: the spec is checked at submission
(invalid_spec naming the field, nothing held), a command needs a container node (or the
buyer's own host-execution node), placement never puts another organization's command
on a node without isolation and matches the network, and the server learns each node's
isolation from its heartbeats."""

import pytest

from banking.selectors import wallet_get
from scheduler.models import Job, Node
from scheduler.services.jobs import job_submit
from scheduler.services.placement import placement_run
from tests.scheduler.conftest import job_body

NONE = {"kind": "none"}
HOST = {"kind": "none", "host_execution": True}
INTERNET = {"kind": "container", "runtime": "podman", "runtime_version": "4.3.1",
            "network": "internet"}
COMMAND = {"command": ["python", "train.py"], "image": "registry.example.com:5000/acme/train:1"}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"command": "id", "image": "--privileged"}, "spec.image"),
        ({"command": "id", "image": "-v/:/host"}, "spec.image"),
        ({"command": "id", "image": "Busybox"}, "spec.image"),
        ({"command": "id", "image": "acme/Train:1"}, "spec.image"),
        ({"command": "id", "image": "busybox@sha256:abc"}, "spec.image"),
        ({"command": "id", "image": "busybox:" + "t" * 129}, "spec.image"),
        ({"command": "id", "image": "a/" * 128 + "b"}, "spec.image"),
        ({"command": "id", "image": "busybox latest"}, "spec.image"),
        ({"command": "id", "image": ""}, "spec.image"),
        ({"command": "id", "image": 7}, "spec.image"),
        ({"command": ["a"] * 257}, "spec.command"),
        ({"command": []}, "spec.command"),
        ({"command": "  "}, "spec.command"),
        ({"command": "id\x00; rm -rf /"}, "spec.command"),
        ({"command": ["sh", "-c", "id\x00"]}, "spec.command[2]"),
        ({"command": ["sh", 5]}, "spec.command[1]"),
        ({"command": "id", "environment": {"1BAD": "x"}}, "spec.environment.1BAD"),
        ({"command": "id", "environment": {"A-B": "x"}}, "spec.environment.A-B"),
        ({"command": "id", "environment": {"SUANLI_JOB_ID": "1"}},
         "spec.environment.SUANLI_JOB_ID"),
        ({"command": "id", "environment": {"A": "x\ny"}}, "spec.environment.A"),
        ({"command": "id", "environment": {"A": "x\x00"}}, "spec.environment.A"),
        ({"command": "id", "environment": {"A": 1}}, "spec.environment.A"),
        ({"command": "id", "environment": {f"V{i}": "x" for i in range(65)}},
         "spec.environment"),
        ({"command": "id", "environment": {"A": "x" * 20000, "B": "y" * 20000}},
         "spec.environment"),
        ({"command": "id", "environment": ["A=1"]}, "spec.environment"),
        ({"command": "id", "network": "host"}, "spec.network"),
        ({"command": "id", "privileged": True}, "spec.privileged"),
        ({"command": "id", "simulate": {"seconds": 3}}, "spec.command"),
        ({"image": "busybox"}, "spec.command"),
        ({"simulate": {"seconds": -1}}, "spec.simulate.seconds"),
    ],
)
def test_a_bad_spec_is_refused_naming_its_field_and_nothing_is_held(
        buyer, online_node, api_client_for, spec, field):
    online_node()
    response = api_client_for(buyer).post("/api/v1/jobs/", job_body(spec=spec), format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_spec"
    assert list(error["fields"]) == [field]
    assert Job.objects.count() == 0
    assert wallet_get(organization_id=buyer.pk).held == 0


@pytest.mark.parametrize("image", [
    "busybox", "busybox:1.36", "library/busybox", "localhost/suanli-test:1",
    "registry.example.com:5000/team/sub/train:v1.2-rc_3",
    "ghcr.io/acme/train@sha256:" + "a" * 64, "nvcr.io/nvidia/pytorch:24.01-py3",
    "a__b/c.d-e", "a" * 200,
])
def test_good_image_references_are_accepted(buyer, online_node, image):
    online_node()
    job = job_submit(organization_id=buyer.pk, spec={"command": "true", "image": image},
                     gpu_class="H100-80GB", gpu_count=1, max_duration_s=60)
    assert (job.workload, job.spec["image"]) == ("isolated", image)


def test_a_command_with_no_isolated_node_is_refused_with_no_isolated_node(
        buyer, online_node, api_client_for):
    online_node(isolation=NONE)
    online_node(isolation=HOST)  # host execution, but the provider's, not this buyer's
    response = api_client_for(buyer).post("/api/v1/jobs/", job_body(spec=COMMAND),
                                          format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "no_isolated_node"
    assert Job.objects.count() == 0
    assert wallet_get(organization_id=buyer.pk).held == 0
    # a simulated run needs no runtime
    simulated = api_client_for(buyer).post("/api/v1/jobs/", job_body(), format="json")
    assert simulated.status_code == 201


def test_internet_is_refused_where_no_node_offers_it(buyer, online_node, api_client_for):
    online_node()  # a container node without network
    response = api_client_for(buyer).post(
        "/api/v1/jobs/", job_body(spec={**COMMAND, "network": "internet"}), format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "no_isolated_node"
    assert Job.objects.count() == 0


def test_placement_puts_commands_only_on_container_nodes(buyer, online_node):
    # Given a cheap node without isolation and a dearer container node
    bare = online_node(isolation=NONE, rate_per_gpu_hour=4_500_000)
    contained = online_node()
    # When a command and a simulated run are placed
    command = job_submit(organization_id=buyer.pk, spec=COMMAND, gpu_class="H100-80GB",
                         gpu_count=1, max_duration_s=60)
    simulated = job_submit(organization_id=buyer.pk, spec={"simulate": {"seconds": 5}},
                           gpu_class="H100-80GB", gpu_count=1, max_duration_s=60)
    assert placement_run().placed == 2
    # Then the command runs in a container; the simulated run takes the cheap bare node
    assert Job.objects.get(pk=command.pk).node_id == contained.pk
    assert Job.objects.get(pk=simulated.pk).node_id == bare.pk


def test_a_host_execution_node_gets_only_its_own_organizations_commands(
        make_org, buyer, online_node):
    # Given a provider that also buys, with a host-execution node and no container node
    own = make_org(provider=True, tokens=10_000_000_000)
    host = online_node(isolation=HOST, owner=own)
    mine = job_submit(organization_id=own.pk, spec=COMMAND, gpu_class="H100-80GB",
                      gpu_count=1, max_duration_s=60)
    # a stranger's command is refused outright: nothing could run it
    with pytest.raises(Exception, match="runs commands in containers") as refused:
        job_submit(organization_id=buyer.pk, spec=COMMAND, gpu_class="H100-80GB",
                   gpu_count=1, max_duration_s=60)
    assert refused.value.code == "no_isolated_node"  # type: ignore[attr-defined]
    assert placement_run().placed == 1
    assert Job.objects.get(pk=mine.pk).node_id == host.pk
    # and once a container node exists, a stranger's job never goes to the host
    online_node(isolation=NONE)
    contained = online_node(gpus=1)
    theirs = job_submit(organization_id=buyer.pk, spec=COMMAND, gpu_class="H100-80GB",
                        gpu_count=1, max_duration_s=60)
    theirs_too = job_submit(organization_id=buyer.pk, spec=COMMAND, gpu_class="H100-80GB",
                            gpu_count=1, max_duration_s=60)
    assert placement_run().placed == 1
    assert Job.objects.get(pk=theirs.pk).node_id == contained.pk
    # the container node is full: the second waits, though the host has 7 GPUs free
    assert Job.objects.get(pk=theirs_too.pk).state == "queued"
    assert Node.objects.get(pk=host.pk).free_gpus == 7
    assert list(Job.objects.filter(node=host).values_list("id", flat=True)) == [mine.pk]


def test_internet_jobs_go_only_where_the_node_offers_it(buyer, online_node):
    online_node()
    offering = online_node(isolation=INTERNET)
    job = job_submit(organization_id=buyer.pk, spec={**COMMAND, "network": "internet"},
                     gpu_class="H100-80GB", gpu_count=1, max_duration_s=60)
    assert job.workload == "internet"
    assert placement_run().placed == 1
    assert Job.objects.get(pk=job.pk).node_id == offering.pk


def test_heartbeats_tell_the_server_each_nodes_isolation(online_node, agent_client,
                                                         api_client_for, provider):
    node = online_node(isolation=NONE)
    beat = {"free_gpus": 8, "busy_gpus": 0, "isolation": {
        "kind": "container", "runtime": "podman", "runtime_version": "4.3.1",
        "network": "internet", "default_image": "localhost/base:1"}}
    response = agent_client(node).post("/api/v1/agent/heartbeat/", beat, format="json")
    assert response.status_code == 200
    shown = api_client_for(provider).get(f"/api/v1/nodes/{node.pk}/").json()
    assert {k: shown[k] for k in ("isolation", "container_runtime", "runtime_version",
                                  "network", "host_execution", "default_image")} == {
        "isolation": "container", "container_runtime": "podman", "runtime_version": "4.3.1",
        "network": "internet", "host_execution": False, "default_image": "localhost/base:1"}
    # a node that loses its runtime says so, and the internet goes with it
    agent_client(node).post("/api/v1/agent/heartbeat/", {
        "free_gpus": 8, "busy_gpus": 0,
        "isolation": {"kind": "none", "network": "internet", "host_execution": True}},
        format="json")
    node.refresh_from_db()
    assert (node.isolation, node.container_runtime, node.network, node.host_execution) == (
        "none", "", "none", True)


@pytest.mark.parametrize("isolation", [
    {"kind": "vm"}, {"kind": "container", "runtime": "lxc"},
    {"kind": "container", "default_image": "--privileged"},
    {"kind": "container", "runtime_version": "1\x00"}, {"kind": "container", "network": "host"},
    "container",
])
def test_a_bad_isolation_report_is_refused_and_changes_nothing(online_node, agent_client,
                                                               isolation):
    node = online_node(isolation=NONE)
    response = agent_client(node).post("/api/v1/agent/heartbeat/", {
        "free_gpus": 8, "busy_gpus": 0, "isolation": isolation}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    node.refresh_from_db()
    assert (node.isolation, node.container_runtime, node.default_image) == ("none", "", "")


def test_the_catalog_counts_only_container_nodes(client, online_node):
    online_node(gpus=8, isolation=NONE)
    online_node(gpus=4, isolation=HOST)
    online_node(gpus=2)
    h100 = next(c for c in client.get("/api/v1/gpu-classes/").json()
                if c["name"] == "H100-80GB")
    assert h100["availability"] == [
        {"region": "eu-west", "nodes_online": 1, "free_gpus": 2, "largest_shape": 2}]


def test_the_job_shows_the_image_and_digest_that_ran(buyer, online_node, agent_client,
                                                     api_client_for):
    node = online_node()
    job = job_submit(organization_id=buyer.pk, spec=COMMAND, gpu_class="H100-80GB",
                     gpu_count=1, max_duration_s=60)
    placement_run()
    lease = agent_client(node).post("/api/v1/agent/lease/", {}, format="json").json()
    [assignment] = lease["assignments"]
    digest = "sha256:" + "c" * 64
    usage = agent_client(node).post(
        f"/api/v1/agent/assignments/{assignment['id']}/usage/",
        {"seq": 1, "gpu_seconds": 0, "image": COMMAND["image"], "image_digest": digest},
        format="json")
    assert usage.status_code == 200
    shown = api_client_for(buyer).get(f"/api/v1/jobs/{job.pk}/").json()
    assert (shown["image"], shown["image_digest"]) == (COMMAND["image"], digest)
    bad = agent_client(node).post(
        f"/api/v1/agent/assignments/{assignment['id']}/usage/",
        {"seq": 2, "gpu_seconds": 1, "image": "--privileged"}, format="json")
    assert bad.status_code == 400
    assert Job.objects.get(pk=job.pk).image == COMMAND["image"]
    assert Node.objects.get(pk=node.pk).isolation == "container"
