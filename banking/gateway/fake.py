"""An in-memory :class:`~banking.gateway.interface.PaymentGateway` for the embedded demo
(``make run``, no network) and for tests.

Deterministic (sequential ids, an injectable clock), thread-safe (one lock around all
state), and faithful to the parts of Stripe that Suanli relies on: idempotency keys,
declines reported on the PaymentIntent, partial refunds, signed webhooks.

Test cards: ``pm_card_visa`` and ``4242424242424242`` succeed; ``pm_card_chargeDeclined``,
``pm_card_visa_chargeDeclined``, ``pm_card_chargeCustomerFail``, ``4000000000000002`` and
``4000000000000341`` are declined. Payout transfers succeed unless the destination
contains ``"fail"``. ``fail_next(operation)`` makes the next call of one operation raise.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

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
from banking.gateway.signatures import (
    DEFAULT_TOLERANCE_SECONDS,
    sign_payload,
    webhook_event_parse_signed,
)

FAKE_WEBHOOK_SECRET = "whsec_suanli_fake"
DECLINE_MESSAGE = "Your card was declined."

SUCCEEDING_PAYMENT_METHODS = frozenset({"pm_card_visa", "4242424242424242"})
DECLINED_PAYMENT_METHODS = frozenset(
    {
        "pm_card_chargeDeclined",
        "pm_card_visa_chargeDeclined",
        "pm_card_chargeCustomerFail",
        "4000000000000002",
        "4000000000000341",
    }
)
# Stripe's test tokens, as Stripe.js would hand them over, and the card each stands for.
FAKE_CARD_TOKENS = {"tok_visa": "pm_card_visa", "tok_chargeDeclined": "pm_card_chargeDeclined"}

OPERATIONS = frozenset(
    {
        "customer_create",
        "payment_intent_create",
        "payment_intent_retrieve",
        "payment_intent_confirm",
        "card_token_attach",
        "refund_create",
        "payout_transfer_create",
        "payments_succeeded_list",
        "refunds_list",
        "payout_transfers_list",
        "charges_list",
    }
)

EventListener = Callable[[bytes, str], None]


class FakeGateway:
    def __init__(
        self,
        *,
        webhook_secret: str = FAKE_WEBHOOK_SECRET,
        clock: Callable[[], float] = time.time,
        webhook_tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    ) -> None:
        self.webhook_secret = webhook_secret
        self._clock = clock
        self._webhook_tolerance = webhook_tolerance
        self._lock = threading.RLock()
        self._counters: dict[str, int] = defaultdict(int)
        self._idempotency: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._failures: dict[str, deque[GatewayError]] = defaultdict(deque)
        self._customers: dict[str, dict[str, str]] = {}
        self._payment_intents: dict[str, PaymentIntentInfo] = {}
        self._charges: dict[str, ChargeInfo] = {}
        self._refunds: dict[str, RefundInfo] = {}
        self._transfers: dict[str, PayoutTransferInfo] = {}
        self._listeners: list[EventListener] = []
        self.events: list[WebhookEvent] = []

    # -- test controls ---------------------------------------------------------------

    def fail_next(
        self,
        operation: str,
        *,
        retryable: bool = False,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """Make the next call of ``operation`` raise :class:`GatewayError` and do nothing.
        Calls queue up: two ``fail_next`` make the next two calls fail."""
        if operation not in OPERATIONS:
            raise ValueError(f"Unknown gateway operation {operation!r}.")
        error = GatewayError(
            message or f"Injected failure of {operation}.",
            code=code or ("connection_error" if retryable else "injected_failure"),
            retryable=retryable,
        )
        with self._lock:
            self._failures[operation].append(error)

    def on_event(self, listener: EventListener) -> None:
        """Call ``listener(payload, signature_header)`` for every event from now on, as
        Stripe would POST it to a webhook endpoint (outside the gateway's lock)."""
        with self._lock:
            self._listeners.append(listener)

    def signed_event(
        self, event: WebhookEvent, *, timestamp: int | None = None
    ) -> tuple[bytes, str]:
        """The body and ``Stripe-Signature`` header Stripe would send for ``event``."""
        payload = json.dumps(
            {
                "id": event.id,
                "object": "event",
                "type": event.type,
                "created": event.created,
                "livemode": event.livemode,
                "data": {"object": event.data_object},
            },
            sort_keys=True,
        ).encode("utf-8")
        ts = int(self._clock()) if timestamp is None else timestamp
        return payload, sign_payload(payload, secret=self.webhook_secret, timestamp=ts)

    # -- internals -------------------------------------------------------------------

    def _now(self) -> int:
        return int(self._clock())

    def _next_id(self, prefix: str) -> str:
        self._counters[prefix] += 1
        return f"{prefix}_fake{self._counters[prefix]:08d}"

    def _maybe_fail(self, operation: str) -> None:
        queue = self._failures.get(operation)
        if queue:
            raise queue.popleft()

    def _idempotent(self, operation: str, key: str, params: Any) -> tuple[bool, Any]:
        """(True, first result) when ``key`` was used before with the same params."""
        if not key:
            raise GatewayError("An idempotency key is required.", code="invalid_request")
        seen = self._idempotency.get((operation, key))
        if seen is None:
            return False, None
        first_params, result = seen
        if first_params != params:
            raise GatewayError(
                f"Keys for idempotent requests can only be used with the same parameters "
                f"they were first used with ({key!r}).",
                code="idempotency_conflict",
            )
        return True, result

    def _emit(self, type_: str, data_object: dict[str, Any]) -> WebhookEvent:
        event = WebhookEvent(
            id=self._next_id("evt"),
            type=type_,
            created=self._now(),
            data_object=data_object,
            livemode=False,
        )
        self.events.append(event)
        return event

    def _deliver(self, events: list[WebhookEvent]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for event in events:
            payload, header = self.signed_event(event)
            for listener in listeners:
                listener(payload, header)

    @staticmethod
    def _pi_object(pi: PaymentIntentInfo) -> dict[str, Any]:
        error = None
        if pi.failure_message:
            error = {"code": pi.failure_code, "message": pi.failure_message}
        return {
            "id": pi.id,
            "object": "payment_intent",
            "amount": pi.amount_cents,
            "currency": pi.currency,
            "status": pi.status,
            "customer": pi.customer_id,
            "latest_charge": pi.latest_charge_id,
            "metadata": dict(pi.metadata),
            "last_payment_error": error,
            "created": pi.created,
        }

    def _get_pi(self, payment_intent_id: str) -> PaymentIntentInfo:
        pi = self._payment_intents.get(payment_intent_id)
        if pi is None:
            raise GatewayError(
                f"No such payment_intent: {payment_intent_id!r}", code="resource_missing"
            )
        return pi

    def _charge(
        self, pi: PaymentIntentInfo, payment_method: str, events: list[WebhookEvent]
    ) -> PaymentIntentInfo:
        if payment_method not in SUCCEEDING_PAYMENT_METHODS | DECLINED_PAYMENT_METHODS:
            raise GatewayError(
                f"No such PaymentMethod: {payment_method!r}", code="resource_missing"
            )
        declined = payment_method in DECLINED_PAYMENT_METHODS
        charge = ChargeInfo(
            id=self._next_id("ch"),
            payment_intent_id=pi.id,
            amount_cents=pi.amount_cents,
            amount_refunded_cents=0,
            currency=pi.currency,
            status="failed" if declined else "succeeded",
            created=self._now(),
        )
        self._charges[charge.id] = charge
        if declined:
            result = replace(
                pi,
                status="requires_payment_method",
                failure_code="card_declined",
                failure_message=DECLINE_MESSAGE,
                latest_charge_id=charge.id,
            )
            self._payment_intents[pi.id] = result
            events.append(self._emit("payment_intent.payment_failed", self._pi_object(result)))
        else:
            result = replace(
                pi,
                status="succeeded",
                failure_code=None,
                failure_message=None,
                latest_charge_id=charge.id,
            )
            self._payment_intents[pi.id] = result
            events.append(self._emit("charge.succeeded", {"id": charge.id, "object": "charge"}))
            events.append(self._emit("payment_intent.succeeded", self._pi_object(result)))
        return result

    # -- PaymentGateway --------------------------------------------------------------

    def customer_create(self, *, name: str, organization_id: str, idempotency_key: str) -> str:
        params = (name, organization_id)
        with self._lock:
            self._maybe_fail("customer_create")
            seen, first = self._idempotent("customer_create", idempotency_key, params)
            if seen:
                return str(first)
            customer_id = self._next_id("cus")
            self._customers[customer_id] = {"name": name, "organization_id": organization_id}
            self._idempotency[("customer_create", idempotency_key)] = (params, customer_id)
            return customer_id

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
        params = (
            customer_id,
            amount_cents,
            currency.lower(),
            dict(metadata),
            payment_method,
            confirm,
        )
        events: list[WebhookEvent] = []
        with self._lock:
            self._maybe_fail("payment_intent_create")
            seen, first = self._idempotent("payment_intent_create", idempotency_key, params)
            if seen:
                return self._payment_intents[str(first)]
            if customer_id not in self._customers:
                raise GatewayError(f"No such customer: {customer_id!r}", code="resource_missing")
            if amount_cents <= 0:
                raise GatewayError("Amount must be positive.", code="invalid_request")
            if confirm and payment_method is None:
                raise ValueError("confirm=True needs a payment_method.")
            pi_id = self._next_id("pi")
            pi = PaymentIntentInfo(
                id=pi_id,
                status="requires_payment_method"
                if payment_method is None
                else "requires_confirmation",
                amount_cents=amount_cents,
                currency=currency.lower(),
                client_secret=f"{pi_id}_secret_fake",
                customer_id=customer_id,
                metadata={str(k): str(v) for k, v in metadata.items()},
                created=self._now(),
            )
            self._payment_intents[pi_id] = pi
            self._idempotency[("payment_intent_create", idempotency_key)] = (params, pi_id)
            if confirm and payment_method is not None:
                pi = self._charge(pi, payment_method, events)
        self._deliver(events)
        return pi

    def payment_intent_retrieve(self, payment_intent_id: str) -> PaymentIntentInfo:
        with self._lock:
            self._maybe_fail("payment_intent_retrieve")
            return self._get_pi(payment_intent_id)

    def payment_intent_confirm(
        self, payment_intent_id: str, *, payment_method: str
    ) -> PaymentIntentInfo:
        events: list[WebhookEvent] = []
        with self._lock:
            self._maybe_fail("payment_intent_confirm")
            pi = self._get_pi(payment_intent_id)
            if pi.status in ("succeeded", "processing", "requires_capture"):
                return pi
            if pi.status == "canceled":
                raise GatewayError(
                    "This PaymentIntent was canceled.", code="payment_intent_unexpected_state"
                )
            pi = self._charge(pi, payment_method, events)
        self._deliver(events)
        return pi

    def card_token_attach(self, *, customer_id: str, token: str, idempotency_key: str) -> str:
        with self._lock:
            self._maybe_fail("card_token_attach")
        card = FAKE_CARD_TOKENS.get(token)
        if card is None:
            raise GatewayError(f"No such token: {token!r}", code="resource_missing")
        if card in DECLINED_PAYMENT_METHODS:
            raise CardDeclined(DECLINE_MESSAGE)
        return card

    def refund_create(
        self, *, payment_intent_id: str, amount_cents: int | None = None, idempotency_key: str
    ) -> RefundInfo:
        params = (payment_intent_id, amount_cents)
        events: list[WebhookEvent] = []
        with self._lock:
            self._maybe_fail("refund_create")
            seen, first = self._idempotent("refund_create", idempotency_key, params)
            if seen:
                return self._refunds[str(first)]
            pi = self._get_pi(payment_intent_id)
            if pi.status != "succeeded" or pi.latest_charge_id is None:
                raise GatewayError("Cannot refund a failed payment.", code="invalid_request")
            charge = self._charges[pi.latest_charge_id]
            remaining = charge.amount_cents - charge.amount_refunded_cents
            amount = remaining if amount_cents is None else amount_cents
            if amount <= 0 or amount > remaining:
                raise GatewayError(
                    f"Refund amount ({amount}) is greater than the unrefunded amount "
                    f"({remaining}).",
                    code="charge_already_refunded" if remaining == 0 else "invalid_request",
                )
            refund = RefundInfo(
                id=self._next_id("re"),
                payment_intent_id=pi.id,
                charge_id=charge.id,
                amount_cents=amount,
                currency=charge.currency,
                status="succeeded",
                created=self._now(),
            )
            self._refunds[refund.id] = refund
            self._charges[charge.id] = replace(
                charge, amount_refunded_cents=charge.amount_refunded_cents + amount
            )
            self._idempotency[("refund_create", idempotency_key)] = (params, refund.id)
            events.append(
                self._emit(
                    "charge.refunded",
                    {
                        "id": charge.id,
                        "object": "charge",
                        "payment_intent": pi.id,
                        "amount": charge.amount_cents,
                        "amount_refunded": charge.amount_refunded_cents + amount,
                    },
                )
            )
        self._deliver(events)
        return refund

    def payout_transfer_create(
        self,
        *,
        destination_account: str,
        amount_cents: int,
        currency: str,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> PayoutTransferInfo:
        params = (destination_account, amount_cents, currency.lower(), dict(metadata))
        with self._lock:
            self._maybe_fail("payout_transfer_create")
            seen, first = self._idempotent("payout_transfer_create", idempotency_key, params)
            if seen:
                assert isinstance(first, PayoutTransferInfo)
                return first
            if "fail" in destination_account:
                result = PayoutTransferInfo(
                    id="",
                    amount_cents=amount_cents,
                    currency=currency.lower(),
                    destination=destination_account,
                    status="failed",
                    failure_message=f"No such destination: {destination_account!r}",
                    metadata=dict(metadata),
                )
            else:
                if amount_cents <= 0:
                    raise GatewayError("Amount must be positive.", code="invalid_request")
                result = PayoutTransferInfo(
                    id=self._next_id("tr"),
                    amount_cents=amount_cents,
                    currency=currency.lower(),
                    destination=destination_account,
                    status="paid",
                    created=self._now(),
                    metadata=dict(metadata),
                )
                self._transfers[result.id] = result
            self._idempotency[("payout_transfer_create", idempotency_key)] = (params, result)
            return result

    def payout_account_retrieve(self, account_id: str) -> PayoutAccountInfo:
        """Accounts named `...missing...` do not exist; `...disabled...` cannot be paid
        out to; any other exists and is enabled (a `...fail...` one fails at transfer)."""
        with self._lock:
            self._maybe_fail("payout_account_retrieve")
            if "missing" in account_id:
                raise GatewayError(f"No such account: {account_id!r}", code="resource_missing")
            enabled = "disabled" not in account_id
            return PayoutAccountInfo(id=account_id, charges_enabled=enabled,
                                     payouts_enabled=enabled)

    def webhook_event_parse(self, payload: bytes, signature_header: str) -> WebhookEvent:
        return webhook_event_parse_signed(
            payload,
            signature_header,
            secret=self.webhook_secret,
            tolerance=self._webhook_tolerance,
        )

    def payments_succeeded_list(self, *, since: int | None) -> list[PaymentIntentInfo]:
        with self._lock:
            self._maybe_fail("payments_succeeded_list")
            return [
                pi
                for pi in self._payment_intents.values()
                if pi.succeeded and (since is None or pi.created >= since)
            ]

    def refunds_list(self, *, since: int | None) -> list[RefundInfo]:
        with self._lock:
            self._maybe_fail("refunds_list")
            return [r for r in self._refunds.values() if since is None or r.created >= since]

    def payout_transfers_list(self, *, since: int | None) -> list[PayoutTransferInfo]:
        with self._lock:
            self._maybe_fail("payout_transfers_list")
            return [t for t in self._transfers.values() if since is None or t.created >= since]

    def charges_list(self, *, since: int | None) -> list[ChargeInfo]:
        with self._lock:
            self._maybe_fail("charges_list")
            return [c for c in self._charges.values() if since is None or c.created >= since]
