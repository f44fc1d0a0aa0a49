"""The tasks banking's services start, sent by name after commit (core.enqueue). Each has
a periodic sweep that catches up with what a broker outage left unsent."""

from core.enqueue import after_commit


def stripe_event_process(event_pk: int) -> None:
    """Process a stored Stripe event (`stripe_events_retry` catches up)."""
    after_commit("banking.stripe_event_process", event_pk)


def payout_execute(payout_id: int) -> None:
    """Execute an approved payout (`payouts_resume` catches up)."""
    after_commit("banking.payout_execute", payout_id)


def webhook_deliver(message_id: int) -> None:
    """Deliver one outbound webhook message (the task retries with backoff)."""
    after_commit("banking.webhook_deliver", message_id)
