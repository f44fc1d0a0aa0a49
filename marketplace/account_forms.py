"""What the storefront adds to allauth's sign-up: the organization the new user owns."""

from typing import Any

from django import forms
from django.http import HttpRequest

from banking.models import Organization
from banking.services.customers import organization_found


class OrganizationSignupForm(forms.Form):
    KIND_CHOICES = [
        ("buyer", "Buyer: buy GPU compute"),
        ("provider", "Provider: sell or deposit GPU capacity"),
        ("both", "Both"),
    ]

    organization_name = forms.CharField(max_length=200, label="Organization name")
    kind = forms.ChoiceField(
        choices=KIND_CHOICES, initial="buyer", widget=forms.RadioSelect,
        label="Your organization is a",
    )
    field_order = ["organization_name", "kind", "email", "password1"]

    def clean_organization_name(self) -> str:
        name: str = self.cleaned_data["organization_name"].strip()
        if not name or "\x00" in name:
            raise forms.ValidationError("Required.")
        if Organization.objects.filter(name__iexact=name).exists():
            raise forms.ValidationError("An organization with this name already exists.")
        return name

    def signup(self, request: HttpRequest, user: Any) -> None:
        kind = self.cleaned_data["kind"]
        membership = organization_found(
            name=self.cleaned_data["organization_name"], owner_id=user.pk,
            is_buyer=kind in ("buyer", "both"), is_provider=kind in ("provider", "both"),
        )
        request.session["organization_id"] = membership.organization_id
