"""Sign-up, log in, password reset, members, switching organization."""

import re

from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.urls import reverse

from banking.models import Invitation, Membership, Organization


def _signup(client, **overrides):
    data = {"organization_name": "Lumen Labs", "kind": "buyer",
            "email": "Ada@Lumen.example", "password1": "correct-horse-42"}
    data.update(overrides)
    return client.post(reverse("store:signup"), data)


def test_sign_up_creates_the_user_the_organization_and_makes_the_user_its_owner(db):
    client = Client()

    response = _signup(client, kind="both")

    assert response.status_code == 302
    assert response["Location"] == reverse("store:wallet")
    org = Organization.objects.get(name="Lumen Labs")
    assert (org.is_buyer, org.is_provider, org.is_approved) == (True, True, False)
    membership = Membership.objects.get(organization=org)
    assert membership.role == Membership.Role.OWNER
    assert membership.user.email == "ada@lumen.example"
    assert client.get(reverse("store:wallet")).status_code == 200


def test_a_taken_organization_name_shows_the_services_error_under_the_field(make_org):
    make_org("Lumen Labs")

    response = _signup(Client())

    assert response.status_code == 200
    form = response.context["form"]
    assert form.errors["organization_name"] == [
        "An organization with this name already exists."]
    assert "An organization with this name already exists." in response.content.decode()
    assert User.objects.count() == 0


def test_a_registered_email_is_refused(db):
    _signup(Client())

    response = _signup(Client(), organization_name="Other")

    assert response.context["form"].errors["email"] == [
        "A user is already registered with this email address."]
    assert Organization.objects.filter(name="Other").count() == 0


def test_a_weak_password_is_refused_before_anything_is_created(db):
    response = _signup(Client(), password1="123")

    assert "password1" in response.context["form"].errors
    assert Organization.objects.count() == 0


def test_log_in_and_log_out(db):
    _signup(Client())
    client = Client()

    response = client.post(reverse("store:login"),
                           {"login": "ada@lumen.example", "password": "correct-horse-42"})
    assert response.status_code == 302
    assert client.get(reverse("store:wallet")).status_code == 200

    client.post(reverse("store:logout"))
    response = client.get(reverse("store:wallet"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("store:login"))


def test_password_reset_emails_a_link_that_sets_a_new_password(db):
    _signup(Client())
    mail.outbox.clear()  # the address's confirmation
    client = Client()

    client.post(reverse("store:password_reset"), {"email": "ada@lumen.example"})

    assert len(mail.outbox) == 1
    found = re.search(r"http://testserver(/accounts/password/reset/key/\S+/)",
                      str(mail.outbox[0].body))
    assert found is not None
    link = found.group(1)
    form_url = client.get(link)["Location"]  # allauth swaps the key for a session marker
    client.post(form_url, {"password1": "another-horse-43", "password2": "another-horse-43"})
    assert Client().login(username="ada@lumen.example", password="another-horse-43")


def test_an_owner_invites_a_new_address_which_gets_a_sign_up_link_and_no_user(
    org, owner_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("store:members"),
                                     {"email": "Bo@Acme.example", "role": "admin"})

    assert response.status_code == 302
    assert not User.objects.filter(email__iexact="bo@acme.example").exists()
    invitation = Invitation.objects.get(organization=org)
    assert (invitation.email, invitation.role, invitation.accepted_at) == (
        "bo@acme.example", "admin", None)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["bo@acme.example"]
    assert "http://testserver/invitations/" in mail.outbox[0].body
    listing = owner_client.get(reverse("store:members")).content.decode()
    assert "bo@acme.example" in listing
    assert "Invited</span>" in listing


def test_a_plain_member_sees_the_list_but_may_not_add(org, client_for):
    client = client_for(org, Membership.Role.DEVELOPER)

    page = client.get(reverse("store:members"))
    response = client.post(reverse("store:members"), {"email": "x@y.example", "role": "developer"})

    assert page.context["form"] is None
    assert response.status_code == 403
    assert "Your role (Developer) may not invite, remove and change members." in (
        response.content.decode())
    assert not User.objects.filter(email="x@y.example").exists()


def test_an_admin_may_not_add_an_owner_and_sees_why(org, client_for):
    client = client_for(org, Membership.Role.ADMIN)

    response = client.post(reverse("store:members"), {"email": "x@y.example", "role": "owner"})

    form = response.context["form"]
    assert form.errors["role"] == ["Owners only."]
    assert form.non_field_errors() == ["Only an owner may make, change or remove owners."]
    assert not User.objects.filter(email="x@y.example").exists()


def test_adding_an_existing_member_again_is_a_form_error(org, owner_client, make_member):
    make_member(org, Membership.Role.DEVELOPER, email="cy@acme.example")

    response = owner_client.post(reverse("store:members"),
                                 {"email": "cy@acme.example", "role": "developer"})

    assert response.context["form"].errors["email"] == ["Already a member."]


def test_a_member_of_two_organizations_switches_between_them(make_org, make_member):
    first, second = make_org("First"), make_org("Second")
    user = make_member(first)
    Membership.objects.create(organization=second, user=user, role=Membership.Role.DEVELOPER)
    client = Client()
    client.force_login(user)
    assert client.get(reverse("store:wallet")).context["request"].organization == first

    client.post(reverse("store:organization_switch"), {"organization_id": second.pk})

    assert client.get(reverse("store:wallet")).context["request"].organization == second


def test_switching_to_an_organization_one_is_not_in_changes_nothing(make_org, client_for):
    mine, theirs = make_org("Mine"), make_org("Theirs")
    client = client_for(mine)

    client.post(reverse("store:organization_switch"), {"organization_id": theirs.pk})

    assert client.get(reverse("store:wallet")).context["request"].organization == mine


def test_a_user_in_no_organization_is_told_so(db):
    user = User.objects.create_user(username="lone", password="x")
    client = Client()
    client.force_login(user)

    response = client.get(reverse("store:wallet"))

    assert response.status_code == 403
    assert "No organization yet" in response.content.decode()


def test_anonymous_visitors_are_sent_to_log_in(db):
    for name in ("store:wallet", "store:api_keys", "store:members", "store:jobs"):
        response = Client().get(reverse(name))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("store:login"))


def test_log_in_takes_the_email_in_any_case(db):
    _signup(Client())
    client = Client()

    response = client.post(reverse("store:login"),
                           {"login": " ADA@lumen.example ", "password": "correct-horse-42"})

    assert response.status_code == 302
    assert client.get(reverse("store:wallet")).status_code == 200


def test_switching_never_redirects_off_site(make_org, client_for):
    client = client_for(make_org("Mine"))
    org_id = client.get(reverse("store:wallet")).context["request"].organization.pk

    response = client.post(reverse("store:organization_switch"),
                           {"organization_id": org_id, "next": "https://evil.example/"})

    assert response["Location"] == reverse("store:wallet")


def test_a_wrong_password_says_so_in_words_about_email(db):
    _signup(Client())

    response = Client().post(reverse("store:login"),
                             {"login": "ada@lumen.example", "password": "wrong-horse"})

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "The email address and/or password you specified are not correct."]
