"""`IdempotentForm` and `apply_domain_error`: the helpers every money form uses."""

import uuid

import pytest
from django import forms

from banking.errors import InsufficientFunds
from banking.models import Transfer
from banking.models.ledger import TransferKind
from banking.services.ledger import grant_post
from core.errors import DomainError
from marketplace.forms import IdempotentForm, apply_domain_error


class GrantForm(IdempotentForm):
    idempotency_scope = "test-grant"
    amount = forms.IntegerField()


def test_an_unbound_form_renders_a_fresh_one_time_key_in_a_hidden_field():
    first, second = GrantForm(), GrantForm()

    html = str(first["idempotency_key"])

    key = first.initial["idempotency_key"]
    assert f'type="hidden" name="idempotency_key" value="{key}"' in html
    assert uuid.UUID(key)
    assert key != second.initial["idempotency_key"]


def test_the_posting_key_is_the_submitted_key_scoped_by_the_form():
    key = str(uuid.uuid4())
    form = GrantForm({"amount": "5", "idempotency_key": key})

    assert form.is_valid()
    assert form.posting_key == f"test-grant:{key}"


@pytest.mark.parametrize("bad", ["", "not-a-uuid"])
def test_a_missing_or_forged_key_is_refused(bad):
    form = GrantForm({"amount": "5", "idempotency_key": bad})

    assert not form.is_valid()
    assert list(form.errors) == ["idempotency_key"]


def test_a_double_submission_of_the_same_rendered_form_posts_once(org):
    rendered_key = GrantForm().initial["idempotency_key"]
    posted = []

    for _click in range(2):
        form = GrantForm({"amount": "700", "idempotency_key": rendered_key})
        assert form.is_valid()
        posted.append(grant_post(organization_id=org.pk, amount=form.cleaned_data["amount"],
                                 reason="double click", idempotency_key=form.posting_key))

    assert posted[0].pk == posted[1].pk
    assert Transfer.objects.filter(kind=TransferKind.GRANT).count() == 1


def test_a_domain_error_shows_its_fields_and_message_and_renews_the_key():
    key = str(uuid.uuid4())
    form = GrantForm({"amount": "5", "idempotency_key": key})
    assert form.is_valid()

    apply_domain_error(form, InsufficientFunds(
        "Your wallet has 3 tokens; this needs 5.", fields={"amount": ["Too much."]}))

    assert form.errors["amount"] == ["Too much."]
    assert form.non_field_errors() == ["Your wallet has 3 tokens; this needs 5."]
    assert form.data["idempotency_key"] != key
    assert f'value="{form.data["idempotency_key"]}"' in str(form["idempotency_key"])


def test_a_domain_error_on_a_field_the_form_lacks_shows_only_at_the_top():
    form = GrantForm({"amount": "5", "idempotency_key": str(uuid.uuid4())})
    form.is_valid()

    apply_domain_error(form, DomainError("Frozen.", fields={"organization": ["Frozen."]}))

    assert set(form.errors) == {"__all__"}
    assert form.non_field_errors() == ["Frozen."]


def test_a_field_map_puts_a_service_field_under_the_form_field():
    class NamedForm(forms.Form):
        organization_name = forms.CharField()

    form = NamedForm({"organization_name": "Acme"})
    form.is_valid()

    apply_domain_error(form, DomainError("Taken.", fields={"name": ["Already taken."]}),
                       field_map={"name": "organization_name"})

    assert form.errors["organization_name"] == ["Already taken."]
