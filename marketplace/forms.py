"""Storefront forms. Services raise `DomainError`; `apply_domain_error` shows its message
and its per-field messages on the form, so a page shows the same words as the API.

Every form that moves money inherits `IdempotentForm`: it carries a hidden one-time key
made when the form is rendered, and the view passes `form.idempotency_key` to the
service as its idempotency key: `form.posting_key`. A double click posts the same key
twice; the ledger posts once.
"""

import re
import uuid
from datetime import date
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm

from banking.amounts import TOKENS_MAX
from banking.models import ApiKeyScope, Membership
from banking.models.ledger import AccountPurpose, TransferKind
from banking.payout_value import payout_value_text
from core.bounds import INTEGER_MAX, BoundedIntegerFormField
from core.errors import DomainError

IDEMPOTENCY_FIELD = "idempotency_key"
# Far above any real password or command a person types; below what makes hashing or a
# spec's own checks slow.
PASSWORD_MAX = 1024
COMMAND_MAX = 16 * 1024


class IdempotentForm(forms.Form):
    """A form whose submission is posted at most once.

    Unbound, it renders a fresh UUID in a hidden field; bound, it reads the UUID back.
    `posting_key` is that UUID scoped by the form's purpose (`idempotency_scope`), so
    the same browser key can never collide with another form's. After a domain error the
    view calls `renew_idempotency_key()` so that the corrected retry is a new request.
    """

    idempotency_scope = "web"

    idempotency_key = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial[IDEMPOTENCY_FIELD] = str(uuid.uuid4())

    @property
    def posting_key(self) -> str:
        """The idempotency key to hand to the service (valid once the form is)."""
        value = self.cleaned_data[IDEMPOTENCY_FIELD]
        return f"{self.idempotency_scope}:{value}"

    def renew_idempotency_key(self) -> None:
        """Render the form again with a new key (the next submission is a new request)."""
        fresh = str(uuid.uuid4())
        if self.is_bound:
            data = self.data.copy()  # type: ignore[attr-defined]  # a QueryDict or a dict
            data[self.add_prefix(IDEMPOTENCY_FIELD)] = fresh
            self.data = data
        self.initial[IDEMPOTENCY_FIELD] = fresh


# Services name their inputs as the API does ("term_months"); a person reads words.
FIELD_WORDS = {
    "term_months": "a term in months",
    "gpu_count": "the number of GPUs",
    "gpu_class": "the GPU class",
    "max_duration_s": "the maximum duration",
    "max_price_per_gpu_hour": "the price cap",
    "min_vram_gb": "the minimum VRAM",
    "rate_per_gpu_hour": "the rate per GPU-hour",
    "vram_gb": "the VRAM",
    "amount_cents": "the amount",
    "stripe_account_id": "the payout account",
    "auto_payout_threshold": "the automatic payout threshold",
    "idempotency_key": "this form",
    "threshold": "the threshold",
    "tokens": "the tokens",
    "start": "the start",
    "end": "the end",
}
_IDENTIFIER = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b|\b(?:tokens|start|end|threshold)\b(?= must)")


def words_for_fields(message: str) -> str:
    """ "A financed block needs term_months." -> "A financed block needs a term in
    months." (and "gpu_count must be ..." -> "The number of GPUs must be ...")."""
    def word(match: re.Match[str]) -> str:
        return FIELD_WORDS.get(match.group(0), match.group(0).replace("_", " "))

    text = _IDENTIFIER.sub(word, message)
    return text[:1].upper() + text[1:] if text else text


def apply_domain_error(
    form: forms.BaseForm, error: DomainError, *, field_map: dict[str, str] | None = None
) -> None:
    """Show a service's error on the form: the fields it names under those fields (a
    service's field name can be mapped to the form's with `field_map`), the message at
    the top. A money form gets a new one-time key for the retry."""
    for service_name, messages in (error.fields or {}).items():
        name = (field_map or {}).get(service_name, service_name)
        listed = messages if isinstance(messages, list | tuple) else [messages]
        if name in form.fields and name != IDEMPOTENCY_FIELD:
            for message in listed:
                form.add_error(name, str(message))
    form.add_error(None, words_for_fields(error.message))
    if isinstance(form, IdempotentForm):
        form.renew_idempotency_key()


# Accounts


class EmailAuthenticationForm(AuthenticationForm):
    """Log in with the email address (it is the username, in lower case)."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That email and password do not match an account. "
        "Passwords are case-sensitive.",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].label = "Email"
        self.fields["username"].widget.attrs.update({"autocomplete": "email", "type": "email"})

    def clean_username(self) -> str:
        return str(self.cleaned_data.get("username", "")).strip().lower()


class SignupForm(forms.Form):
    class Kind:
        BUYER = "buyer"
        PROVIDER = "provider"
        BOTH = "both"

    KIND_CHOICES = [
        (Kind.BUYER, "Buyer: buy GPU compute"),
        (Kind.PROVIDER, "Provider: sell or deposit GPU capacity"),
        (Kind.BOTH, "Both"),
    ]

    organization_name = forms.CharField(max_length=200, label="Organization name")
    kind = forms.ChoiceField(
        choices=KIND_CHOICES, initial=Kind.BUYER, widget=forms.RadioSelect,
        label="Your organization is a",
    )
    email = forms.EmailField(label="Work email")
    password = forms.CharField(
        max_length=PASSWORD_MAX,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )

    def clean_password(self) -> str:
        password: str = self.cleaned_data["password"]
        password_validation.validate_password(password)
        return password

    @property
    def is_buyer(self) -> bool:
        return self.cleaned_data["kind"] in (self.Kind.BUYER, self.Kind.BOTH)

    @property
    def is_provider(self) -> bool:
        return self.cleaned_data["kind"] in (self.Kind.PROVIDER, self.Kind.BOTH)


class MemberInviteForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.DEVELOPER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


class OrganizationSwitchForm(forms.Form):
    organization_id = BoundedIntegerFormField(widget=forms.HiddenInput)


# Wallet


class StatementFilterForm(forms.Form):
    kind = forms.ChoiceField(
        choices=[("", "All kinds"), *TransferKind.choices], required=False
    )
    account = forms.ChoiceField(
        choices=[
            ("", "All accounts"),
            (AccountPurpose.WALLET, "Wallet"),
            (AccountPurpose.HELD, "Held"),
            (AccountPurpose.CREDIT, "Credit"),
            (AccountPurpose.DEBT, "Debt"),
        ],
        required=False,
    )
    date_from = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start: date | None = data.get("date_from")
        end: date | None = data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "Must not be before the start date.")
        return data

    def filters(self) -> dict[str, Any]:
        """Keyword arguments for `statement_list` (empty when the form is invalid)."""
        if not self.is_valid():
            return {}
        data = self.cleaned_data
        return {
            "kinds": [data["kind"]] if data.get("kind") else None,
            "purposes": [data["account"]] if data.get("account") else None,
            "date_from": data.get("date_from"),
            "date_to": data.get("date_to"),
        }


class LowBalanceAlertForm(forms.Form):
    threshold = BoundedIntegerFormField(
        required=False, min_value=1, max_value=TOKENS_MAX,
        label="Email us when available tokens fall below",
        help_text="Leave empty to turn the alert off.",
        widget=forms.NumberInput(attrs={"placeholder": "e.g. 1000000", "inputmode": "numeric"}),
    )


class AutoTopUpForm(forms.Form):
    enabled = forms.BooleanField(required=False, initial=True, label="Auto top-up on")
    threshold = BoundedIntegerFormField(
        min_value=1, max_value=TOKENS_MAX, label="When available tokens fall below",
        widget=forms.NumberInput(attrs={"placeholder": "e.g. 50000000", "inputmode": "numeric"}),
    )
    amount_usd = BoundedIntegerFormField(label="Charge my card (USD)", min_value=1,
                                         max_value=10_000, initial=25)
    payment_method = forms.CharField(
        label="Saved card", max_length=255, initial="pm_card_visa",
        help_text="The card on file (pm_…) charged with nobody at it: a decline or a bank's "
                  "request for authentication pauses auto top-up and emails the owners.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # It shares the wallet page with the top-up form, whose fields have the same
        # names: ids of their own keep each label on its field and the page's ids unique.
        kwargs.setdefault("auto_id", "id_auto_topup_%s")
        super().__init__(*args, **kwargs)


# API keys


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100, initial="default", help_text="So you can tell your keys apart."
    )
    scopes = forms.MultipleChoiceField(
        choices=ApiKeyScope.choices, widget=forms.CheckboxSelectMultiple, required=False,
        help_text="What the key may do; none ticked: all your role allows.",
    )
    expires_in_days = BoundedIntegerFormField(
        required=False, min_value=1, max_value=730, label="Expires in (days)",
        help_text="Empty: the key lasts until revoked.",
    )

    def __init__(self, *args: Any, allowed_scopes: frozenset[str] = frozenset(),
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["scopes"]
        field.initial = [s for s in ApiKeyScope.values if s in allowed_scopes]


# Compute


class TopUpForm(IdempotentForm):
    idempotency_scope = "topup"

    amount_usd = BoundedIntegerFormField(
        label="Amount (USD)", min_value=1, max_value=10_000, initial=50,
        help_text="Whole dollars; the tokens it buys are shown before you pay.",
    )
    payment_method = forms.CharField(
        label="Card", initial="pm_card_visa", max_length=255,
        help_text="A saved card or a test card such as pm_card_visa.",
    )

    def __init__(self, *args: Any, card_entry: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if card_entry:
            # The card is entered on the next page, into Stripe Elements: it never
            # passes through this server.
            del self.fields["payment_method"]


class JobSubmitForm(IdempotentForm):
    idempotency_scope = "job"

    gpu_class = forms.ChoiceField(label="GPU class")
    gpu_count = BoundedIntegerFormField(label="GPUs", min_value=1, max_value=64, initial=1)
    max_duration_s = BoundedIntegerFormField(
        label="Maximum duration (seconds)", min_value=1, max_value=30 * 86400, initial=600,
        help_text="The job is stopped at this limit; its hold covers exactly this much.",
    )
    command = forms.CharField(
        label="Command", required=False, max_length=COMMAND_MAX,
        help_text="Leave empty to run a simulated job of the seconds below.",
    )
    simulate_seconds = BoundedIntegerFormField(label="Simulated run (seconds)", min_value=1,
                                          max_value=86400, initial=20, required=False)
    priority = BoundedIntegerFormField(min_value=-100, max_value=100, initial=0, required=False)
    block = forms.ChoiceField(
        label="Run on", required=False,
        help_text="On one of your blocks the job is placed first on the bank's GPUs during "
                  "the block's window and charged nothing more.",
    )

    def __init__(self, *args: Any, gpu_classes: list[tuple[str, str]],
                 blocks: list[tuple[str, str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["gpu_class"].choices = gpu_classes  # type: ignore[attr-defined]
        self.fields["block"].choices = [  # type: ignore[attr-defined]
            ("", "On demand (pay per use)"), *(blocks or [])]
        if not blocks:
            self.fields["block"].widget = forms.HiddenInput()

    def spec(self) -> dict[str, Any]:
        command = (self.cleaned_data.get("command") or "").strip()
        if command:
            return {"command": command}
        return {"simulate": {"seconds": self.cleaned_data.get("simulate_seconds") or 20}}


class NodeRegisterForm(forms.Form):
    name = forms.CharField(max_length=100)
    gpu_class = forms.ChoiceField(label="GPU class")
    gpu_count = BoundedIntegerFormField(label="GPUs", min_value=1, max_value=64, initial=8)
    region = forms.CharField(max_length=32, initial="eu-west")
    mode = forms.ChoiceField(choices=[("market", "Open market"), ("bank", "Bank deposit")],
                             initial="market")

    def __init__(self, *args: Any, gpu_classes: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["gpu_class"].choices = gpu_classes  # type: ignore[attr-defined]


class DepositForm(IdempotentForm):
    idempotency_scope = "deposit"

    node = forms.ChoiceField(label="Node (bank mode)")
    gpu_count = BoundedIntegerFormField(label="GPUs", min_value=1, max_value=64, initial=1)
    start = forms.DateTimeField(label="From (UTC, whole hour)",
                                widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    end = forms.DateTimeField(label="Until (UTC, whole hour)",
                              widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))

    def __init__(self, *args: Any, nodes: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["node"].choices = nodes  # type: ignore[attr-defined]


class PayoutForm(IdempotentForm):
    idempotency_scope = "payout"

    tokens = BoundedIntegerFormField(label="Tokens to cash out", min_value=1,
                                     max_value=TOKENS_MAX)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        minimum = settings.PAYOUT_MIN_TOKENS
        self.fields["tokens"].help_text = (
            f"At least {minimum:,} tokens ({payout_value_text(minimum)}). You see what you "
            "receive before confirming.")
        self.fields["tokens"].widget.attrs["min"] = str(minimum)

    def clean_tokens(self) -> int:
        tokens: int = self.cleaned_data["tokens"]
        minimum = settings.PAYOUT_MIN_TOKENS
        if tokens < minimum:
            raise forms.ValidationError(
                f"The smallest payout is {minimum:,} tokens ({payout_value_text(minimum)}).")
        return tokens


class BlockForm(IdempotentForm):
    idempotency_scope = "block"

    gpu_class = forms.ChoiceField(label="GPU class")
    gpu_count = BoundedIntegerFormField(label="GPUs", min_value=1, max_value=1024, initial=1)
    start = forms.DateTimeField(label="From (UTC, whole hour)",
                                widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    hours = BoundedIntegerFormField(label="Hours", min_value=1, max_value=24 * 366, initial=24)
    payment = forms.ChoiceField(choices=[("wallet", "Pay now from the wallet"),
                                         ("financed", "Finance on my credit line")])
    term_months = BoundedIntegerFormField(label="Term (months, when financed)", min_value=1,
                                     max_value=120, required=False)

    def __init__(self, *args: Any, gpu_classes: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["gpu_class"].choices = gpu_classes  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("payment") == "financed" and not data.get("term_months"):
            self.add_error("term_months", "Choose over how many months to pay.")
        return data


class PayoutAccountForm(forms.Form):
    stripe_account_id = forms.CharField(label="Stripe connected account", max_length=255,
                                        help_text="acct_…, where payouts are sent.")
    auto_payout_threshold = BoundedIntegerFormField(
        label="Auto-payout above (tokens)", min_value=0, max_value=TOKENS_MAX, required=False,
        help_text="Earnings above this are swept into a payout daily. Empty: off.")


class AdvanceForm(IdempotentForm):
    idempotency_scope = "advance"

    amount = BoundedIntegerFormField(label="Tokens to borrow", min_value=1, max_value=TOKENS_MAX)


class SellBackForm(IdempotentForm):
    idempotency_scope = "sell-back"

    gpu_count = BoundedIntegerFormField(label="GPUs", min_value=1, max_value=INTEGER_MAX)
    start = forms.DateTimeField(label="From (UTC, whole hour)",
                                widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
