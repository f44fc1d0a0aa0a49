"""The Stripe implementation of :class:`~banking.gateway.interface.PaymentGateway`.

This is the only module in Suanli that imports ``stripe``. It talks through its own
``stripe.StripeClient`` (no global ``stripe.api_key``), so several gateways, e.g. one
per test server, never share state. Stripe objects are turned into the plain
dataclasses of :mod:`banking.gateway.interface` before they leave this module, and every
``stripe.StripeError`` becomes a :class:`GatewayError`.

It also works against localstripe (``api_base="http://127.0.0.1:<port>"``), which
differs from Stripe in ways handled here:

* lists of PaymentIntents, refunds and transfers take no ``created`` filter (localstripe
  answers 400), so with a custom ``api_base`` the filter is applied client-side
  (``server_side_created_filter`` overrides the choice);
* ``POST /v1/payment_intents/{id}/confirm`` with ``payment_method`` is "Not
  implemented", so :meth:`StripeGateway.payment_intent_confirm` sets the payment method
  with an update first, then confirms;
* a card error names the failed charge but not the PaymentIntent, so the
  PaymentIntent is found through the charge;
* ``latest_charge`` comes back expanded (an object) instead of an id;
* Connect transfers do not exist (404).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import stripe

from banking.gateway.interface import (
    CardDeclined,
    ChargeInfo,
    GatewayError,
    PaymentIntentInfo,
    PayoutAccountInfo,
    PayoutTransferInfo,
    RefundInfo,
    WebhookEvent,
)
from banking.gateway.signatures import DEFAULT_TOLERANCE_SECONDS, webhook_event_parse_signed

_ALREADY_CONFIRMED = frozenset({"succeeded", "processing", "requires_capture"})
_LIST_PAGE_SIZE = 100


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict()
    if isinstance(obj, dict):
        return obj
    raise GatewayError(f"Unexpected response from Stripe: {type(obj).__name__}")


def _ref_id(value: Any) -> str | None:
    """An id from a field that is either an id or an expanded object."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        ref = value.get("id")
        return ref if isinstance(ref, str) else None
    if isinstance(value, stripe.StripeObject):
        ref = getattr(value, "id", None)
        return ref if isinstance(ref, str) else None
    return None


def _metadata(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _payment_intent_info(pi: dict[str, Any]) -> PaymentIntentInfo:
    error = pi.get("last_payment_error") or {}
    failure_message = error.get("message") if isinstance(error, dict) else None
    failure_code = None
    if isinstance(error, dict):
        failure_code = error.get("decline_code") or error.get("code")
    return PaymentIntentInfo(
        id=pi["id"],
        status=str(pi.get("status")),
        amount_cents=int(pi["amount"]),
        currency=str(pi["currency"]).lower(),
        client_secret=pi.get("client_secret"),
        customer_id=_ref_id(pi.get("customer")),
        failure_code=failure_code,
        failure_message=failure_message,
        latest_charge_id=_ref_id(pi.get("latest_charge")),
        metadata=_metadata(pi.get("metadata")),
        created=int(pi.get("created") or 0),
    )


def _refund_info(refund: dict[str, Any]) -> RefundInfo:
    return RefundInfo(
        id=refund["id"],
        payment_intent_id=_ref_id(refund.get("payment_intent")),
        charge_id=_ref_id(refund.get("charge")),
        amount_cents=int(refund["amount"]),
        currency=str(refund["currency"]).lower(),
        status=str(refund.get("status")),
        created=int(refund.get("created") or 0),
        metadata=_metadata(refund.get("metadata")),
    )


def _transfer_info(transfer: dict[str, Any]) -> PayoutTransferInfo:
    amount = int(transfer["amount"])
    reversed_cents = int(transfer.get("amount_reversed") or 0)
    fully_reversed = bool(transfer.get("reversed")) or (amount > 0 and reversed_cents >= amount)
    return PayoutTransferInfo(
        id=transfer["id"],
        amount_cents=amount,
        currency=str(transfer["currency"]).lower(),
        destination=_ref_id(transfer.get("destination")) or "",
        status="failed" if fully_reversed else "paid",
        failure_message="The transfer was reversed." if fully_reversed else None,
        created=int(transfer.get("created") or 0),
        metadata=_metadata(transfer.get("metadata")),
    )


def _charge_info(charge: dict[str, Any]) -> ChargeInfo:
    return ChargeInfo(
        id=charge["id"],
        payment_intent_id=_ref_id(charge.get("payment_intent")),
        amount_cents=int(charge["amount"]),
        amount_refunded_cents=int(charge.get("amount_refunded") or 0),
        currency=str(charge["currency"]).lower(),
        status=str(charge.get("status")),
        created=int(charge.get("created") or 0),
    )


def _gateway_error(exc: stripe.StripeError) -> GatewayError:
    message = exc.user_message or str(exc) or type(exc).__name__
    status = exc.http_status
    code = exc.code
    if isinstance(exc, stripe.CardError):
        return CardDeclined(message, code=code or "card_declined")
    if isinstance(exc, stripe.APIConnectionError):
        return GatewayError(message, code="connection_error", retryable=True)
    if isinstance(exc, stripe.RateLimitError):
        return GatewayError(message, code="rate_limited", retryable=True)
    if isinstance(exc, stripe.IdempotencyError):
        return GatewayError(message, code="idempotency_conflict", retryable=False)
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return GatewayError(message, code="authentication_failed", retryable=False)
    if isinstance(exc, stripe.APIError) and status is not None and status < 500:
        return GatewayError(message, code="provider_error", retryable=False)
    if status is None or status >= 500:
        return GatewayError(message, code=code or "provider_error", retryable=True)
    return GatewayError(message, code=code or "invalid_request", retryable=False)


class _TransferRefused(Exception):
    """Stripe refused a transfer (a 4xx invalid request): reported as a failed payout."""


@contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except stripe.StripeError as exc:
        raise _gateway_error(exc) from exc


class StripeGateway:
    """:class:`~banking.gateway.interface.PaymentGateway` backed by the Stripe API.

    ``api_base`` empty or ``None`` means the real Stripe; anything else (localstripe,
    stripe-mock) is used as the API host.
    """

    def __init__(
        self,
        secret_key: str,
        webhook_secret: str,
        api_base: str | None = None,
        *,
        max_network_retries: int = 2,
        server_side_created_filter: bool | None = None,
        webhook_tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    ) -> None:
        if not secret_key:
            raise ValueError("StripeGateway needs a secret key.")
        self._webhook_secret = webhook_secret
        self._webhook_tolerance = webhook_tolerance
        base = (api_base or "").rstrip("/")
        self._server_side_created_filter = (
            not base if server_side_created_filter is None else server_side_created_filter
        )
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": base} if base else None,
            max_network_retries=max_network_retries,
        )

    # -- customers and payments ------------------------------------------------------

    def customer_create(self, *, name: str, organization_id: str, idempotency_key: str) -> str:
        with _translated_errors():
            customer = self._client.v1.customers.create(
                {"name": name, "metadata": {"organization_id": organization_id}},
                {"idempotency_key": idempotency_key},
            )
        return str(customer.id)

    def payment_intent_create(
        self,
        *,
        customer_id: str,
        amount_cents: int,
        currency: str,
        metadata: dict[str, str],
        idempotency_key: str,
        payment_method: str | None = None,
        confirm: bool = False,
        off_session: bool = False,
    ) -> PaymentIntentInfo:
        params: dict[str, Any] = {
            "customer": customer_id,
            "amount": amount_cents,
            "currency": currency.lower(),
            "metadata": dict(metadata),
            # Cards only: no redirect-based methods, so confirming needs no return_url.
            "payment_method_types": ["card"],
        }
        if payment_method is not None:
            params["payment_method"] = payment_method
        if confirm:
            if payment_method is None:
                raise ValueError("confirm=True needs a payment_method.")
            params["confirm"] = True
        if off_session:
            # charged with nobody at the card (auto top-up): the bank declines rather than
            # asking for authentication the customer cannot give now
            if not confirm:
                raise ValueError("off_session=True needs confirm=True.")
            params["off_session"] = True
        try:
            with _translated_errors():
                pi = self._client.v1.payment_intents.create(
                    cast(Any, params), {"idempotency_key": idempotency_key}
                )
        except CardDeclined as declined:
            return self._declined_payment_intent(declined, payment_intent_id=None)
        return _payment_intent_info(_as_dict(pi))

    def payment_intent_retrieve(self, payment_intent_id: str) -> PaymentIntentInfo:
        with _translated_errors():
            pi = self._client.v1.payment_intents.retrieve(payment_intent_id)
        return _payment_intent_info(_as_dict(pi))

    def payment_intent_confirm(
        self, payment_intent_id: str, *, payment_method: str
    ) -> PaymentIntentInfo:
        """Attach ``payment_method`` and confirm. Repeating it after success is harmless:
        a PaymentIntent that is already confirmed is returned as it is."""
        current = self.payment_intent_retrieve(payment_intent_id)
        if current.status in _ALREADY_CONFIRMED:
            return current
        try:
            with _translated_errors():
                self._client.v1.payment_intents.update(
                    payment_intent_id, {"payment_method": payment_method}
                )
                pi = self._client.v1.payment_intents.confirm(payment_intent_id)
        except CardDeclined as declined:
            return self._declined_payment_intent(declined, payment_intent_id=payment_intent_id)
        return _payment_intent_info(_as_dict(pi))

    def card_token_attach(self, *, customer_id: str, token: str, idempotency_key: str) -> str:
        with _translated_errors():
            card = self._client.v1.customers.payment_sources.create(
                customer_id, {"source": token}, {"idempotency_key": idempotency_key}
            )
        return str(card.id)

    def _declined_payment_intent(
        self, declined: CardDeclined, *, payment_intent_id: str | None
    ) -> PaymentIntentInfo:
        """Report a decline on its PaymentIntent (see the interface's docstring)."""
        cause = declined.__cause__
        body: dict[str, Any] = {}
        if isinstance(cause, stripe.StripeError) and isinstance(cause.json_body, dict):
            error = cause.json_body.get("error")
            body = error if isinstance(error, dict) else {}
        pi_id = payment_intent_id or _ref_id(body.get("payment_intent"))
        if pi_id is None and isinstance(body.get("charge"), str):
            with _translated_errors():
                charge = self._client.v1.charges.retrieve(body["charge"])
            pi_id = _ref_id(_as_dict(charge).get("payment_intent"))
        if pi_id is None:
            raise declined
        info = self.payment_intent_retrieve(pi_id)
        if info.failure_message:
            return info
        return PaymentIntentInfo(
            id=info.id,
            status=info.status,
            amount_cents=info.amount_cents,
            currency=info.currency,
            client_secret=info.client_secret,
            customer_id=info.customer_id,
            failure_code=body.get("decline_code") or declined.code,
            failure_message=declined.message,
            latest_charge_id=info.latest_charge_id or _ref_id(body.get("charge")),
            metadata=info.metadata,
            created=info.created,
        )

    def refund_create(
        self, *, payment_intent_id: str, amount_cents: int | None = None, idempotency_key: str
    ) -> RefundInfo:
        params: dict[str, Any] = {"payment_intent": payment_intent_id}
        if amount_cents is not None:
            params["amount"] = amount_cents
        with _translated_errors():
            refund = self._client.v1.refunds.create(
                cast(Any, params), {"idempotency_key": idempotency_key}
            )
        info = _refund_info(_as_dict(refund))
        if info.payment_intent_id is None:
            return RefundInfo(
                id=info.id,
                payment_intent_id=payment_intent_id,
                charge_id=info.charge_id,
                amount_cents=info.amount_cents,
                currency=info.currency,
                status=info.status,
                created=info.created,
                metadata=info.metadata,
            )
        return info

    # -- payouts -------------------------------------------------------------------

    def payout_transfer_create(
        self,
        *,
        destination_account: str,
        amount_cents: int,
        currency: str,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> PayoutTransferInfo:
        """A Connect transfer to ``destination_account``.

        A refusal by Stripe (unknown account, insufficient platform balance...) comes
        back as ``status="failed"`` with an empty id and Stripe's message; network,
        rate-limit, 5xx and authentication failures raise :class:`GatewayError`.
        """
        try:
            with _translated_errors():
                try:
                    transfer = self._client.v1.transfers.create(
                        {
                            "amount": amount_cents,
                            "currency": currency.lower(),
                            "destination": destination_account,
                            "metadata": dict(metadata),
                        },
                        {"idempotency_key": idempotency_key},
                    )
                except stripe.InvalidRequestError as refused:
                    if refused.http_status is not None and refused.http_status >= 500:
                        raise
                    raise _TransferRefused(refused.user_message or str(refused)) from refused
        except _TransferRefused as refused:
            return PayoutTransferInfo(
                id="",
                amount_cents=amount_cents,
                currency=currency.lower(),
                destination=destination_account,
                status="failed",
                failure_message=str(refused),
                metadata=dict(metadata),
            )
        return _transfer_info(_as_dict(transfer))

    def payout_account_retrieve(self, account_id: str) -> PayoutAccountInfo:
        with _translated_errors():
            account = _as_dict(self._client.v1.accounts.retrieve(account_id))
        return PayoutAccountInfo(id=str(account.get("id") or account_id),
                                 charges_enabled=bool(account.get("charges_enabled")),
                                 payouts_enabled=bool(account.get("payouts_enabled")))

    # -- webhooks ------------------------------------------------------------------

    def webhook_event_parse(self, payload: bytes, signature_header: str) -> WebhookEvent:
        return webhook_event_parse_signed(
            payload,
            signature_header,
            secret=self._webhook_secret,
            tolerance=self._webhook_tolerance,
        )

    # -- reconciliation ------------------------------------------------------------

    def _list(
        self, lister: Callable[[dict[str, Any]], Any], since: int | None
    ) -> Iterable[dict[str, Any]]:
        params: dict[str, Any] = {"limit": _LIST_PAGE_SIZE}
        if since is not None and self._server_side_created_filter:
            params["created"] = {"gte": since}
        with _translated_errors():
            page = lister(params)
            items = [_as_dict(item) for item in page.auto_paging_iter()]
        return [i for i in items if since is None or int(i.get("created") or 0) >= since]

    def payments_succeeded_list(self, *, since: int | None) -> list[PaymentIntentInfo]:
        items = self._list(lambda p: self._client.v1.payment_intents.list(cast(Any, p)), since)
        infos = [_payment_intent_info(i) for i in items]
        return sorted((i for i in infos if i.succeeded), key=lambda i: (i.created, i.id))

    def refunds_list(self, *, since: int | None) -> list[RefundInfo]:
        items = self._list(lambda p: self._client.v1.refunds.list(cast(Any, p)), since)
        return sorted((_refund_info(i) for i in items), key=lambda i: (i.created, i.id))

    def payout_transfers_list(self, *, since: int | None) -> list[PayoutTransferInfo]:
        items = self._list(lambda p: self._client.v1.transfers.list(cast(Any, p)), since)
        return sorted((_transfer_info(i) for i in items), key=lambda i: (i.created, i.id))

    def charges_list(self, *, since: int | None) -> list[ChargeInfo]:
        items = self._list(lambda p: self._client.v1.charges.list(cast(Any, p)), since)
        return sorted((_charge_info(i) for i in items), key=lambda i: (i.created, i.id))
