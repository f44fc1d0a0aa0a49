"""Organizations see only the sections of their kind: a provider-only organization is refused
the buyer's pages (jobs, blocks, loans) and a buyer-only one the provider portal, when the
URL is typed, not only left out of the navigation; a refused POST changes nothing."""

import pytest

from banking.selectors import wallet_get
from marketplace.models import Block
from scheduler.models import Job, Node
from scheduler.services.nodes import node_register

BUYER_PAGES = ["/jobs/", "/jobs/rows/", "/jobs/estimate/?gpu_count=1&max_duration_s=60",
               "/jobs/1/", "/jobs/1/log.txt", "/jobs/1/outputs/1/", "/blocks/", "/loans/"]
PROVIDER_PAGES = ["/provider/", "/provider/nodes/created/"]
TOKENS = 10**11


@pytest.mark.parametrize("path", BUYER_PAGES)
def test_a_provider_only_organization_is_refused_the_buyers_pages(make_org, client_for, path):
    provider = make_org(provider=True, buyer=False)
    response = client_for(provider).get(path)
    assert response.status_code == 403
    body = response.content.decode()
    assert f"{provider.name} is a provider organization: jobs, blocks and loans are for" in body
    assert 'href="/provider/"' in body


@pytest.mark.parametrize("path", PROVIDER_PAGES)
def test_a_buyer_only_organization_is_refused_the_provider_portal(make_org, client_for, path):
    buyer = make_org()
    response = client_for(buyer).get(path)
    assert response.status_code == 403
    assert f"{buyer.name} is a buyer organization." in response.content.decode()


def test_a_provider_only_organization_posting_a_job_or_a_block_changes_nothing(
        make_org, client_for):
    provider = make_org(provider=True, buyer=False, tokens=TOKENS)
    client = client_for(provider)
    job = client.post("/jobs/", {"gpu_class": "H100-80GB", "gpu_count": "1",
                                 "max_duration_s": "60", "command": "echo hi",
                                 "idempotency_key": "6c7f4a52-0000-4000-8000-000000000001"})
    block = client.post("/blocks/", {"gpu_class": "H100-80GB", "gpu_count": "1", "hours": "4",
                                     "payment": "wallet", "action": "buy",
                                     "idempotency_key": "6c7f4a52-0000-4000-8000-000000000002"})
    assert (job.status_code, block.status_code) == (403, 403)
    assert Job.objects.filter(organization=provider).count() == 0
    assert Block.objects.filter(organization=provider).count() == 0
    assert wallet_get(organization_id=provider.pk).available == TOKENS
    assert wallet_get(organization_id=provider.pk).held == 0


def test_a_buyer_only_organization_posting_to_the_portal_changes_nothing(make_org, client_for):
    buyer = make_org()
    other = make_org(provider=True, buyer=False)
    node = node_register(provider_id=other.pk, name="rack-1", gpu_class="H100-80GB",
                         gpu_count=8, region="eu-west").node
    client = client_for(buyer)
    registered = client.post("/provider/", {"form": "node", "name": "rack-7",
                                            "gpu_class": "H100-80GB", "gpu_count": 8,
                                            "region": "eu-west", "mode": "bank"})
    drained = client.post(f"/provider/nodes/{node.pk}/drain/", {"drain": "1"})
    assert (registered.status_code, drained.status_code) == (403, 403)
    assert Node.objects.filter(provider=buyer).count() == 0
    status = node.status
    node.refresh_from_db()
    assert node.status == status != Node.Status.DRAINING


@pytest.mark.parametrize("path", ["/jobs/", "/blocks/", "/loans/", "/provider/", "/wallet/"])
def test_an_organization_of_both_kinds_has_every_section(make_org, client_for, path):
    both = make_org(provider=True, buyer=True)
    assert client_for(both).get(path).status_code == 200
