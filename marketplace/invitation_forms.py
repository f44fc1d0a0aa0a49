"""allauth's sign-up for an invited address. Apart from marketplace.account_forms because
allauth's `SignupForm` is built on that module's form (ACCOUNT_SIGNUP_FORM_CLASS): this
one builds on allauth's, so it cannot live there."""

from typing import Any

from allauth.account.forms import SignupForm
from django.http import HttpRequest


class InvitationSignupForm(SignupForm):
    """No organization of its own (the invitee joins the inviting one once it confirms the
    address), and the address is the invitation's, not one the visitor types: a disabled
    field keeps its initial value whatever is posted."""

    def __init__(self, *args: Any, email: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("organization_name", "kind"):
            self.fields.pop(name, None)
        self.fields["email"].initial = email
        self.fields["email"].disabled = True

    def custom_signup(self, request: HttpRequest, user: Any) -> None:
        """Nothing to found: the membership comes from the invitation."""
