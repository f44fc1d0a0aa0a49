"""API keys: the secret is shown once; revoking is a confirmed POST; others' keys 404."""

from django.urls import reverse

from banking.models import ApiKey
from banking.services.customers import api_key_authenticate, api_key_issue


def test_a_new_keys_secret_is_shown_on_the_next_page_only(org, owner_client):
    response = owner_client.post(reverse("store:api_keys"), {"name": "ci"})
    assert response["Location"] == reverse("store:api_key_created")

    shown = owner_client.get(reverse("store:api_key_created"))
    again = owner_client.get(reverse("store:api_key_created"))

    secret = shown.context["secret"]
    authenticated = api_key_authenticate(secret)
    assert authenticated is not None
    assert authenticated.organization_id == org.pk
    assert secret in shown.content.decode()
    assert again.status_code == 302
    listing = owner_client.get(reverse("store:api_keys")).content.decode()
    assert secret not in listing
    assert ApiKey.objects.get(organization=org).prefix in listing


def test_revoking_asks_first_then_revokes_on_post(org, owner_client):
    issued = api_key_issue(organization_id=org.pk, name="old")
    url = reverse("store:api_key_revoke", args=[issued.api_key.pk])

    confirm = owner_client.get(url)
    issued.api_key.refresh_from_db()
    assert confirm.status_code == 200
    assert issued.api_key.revoked_at is None

    owner_client.post(url)

    issued.api_key.refresh_from_db()
    assert issued.api_key.revoked_at is not None
    assert api_key_authenticate(issued.secret) is None


def test_another_organizations_key_is_a_404_and_stays_active(make_org, client_for):
    mine, theirs = make_org("Mine"), make_org("Theirs")
    issued = api_key_issue(organization_id=theirs.pk)
    client = client_for(mine)
    url = reverse("store:api_key_revoke", args=[issued.api_key.pk])

    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404
    assert api_key_authenticate(issued.secret) is not None


def test_a_blank_name_is_a_form_error(org, owner_client):
    response = owner_client.post(reverse("store:api_keys"), {"name": ""})

    assert response.context["form"].errors["name"] == ["This field is required."]
    assert ApiKey.objects.filter(organization=org).count() == 0
