"""The bank in the admin, one module per topic. Django's admin autodiscovery imports this
package, and importing it registers every topic's model admins, panels and pages (the
dashboard shows the ledger's panel before the payments' one)."""

from banking.admin import customers, ledger, lending, payments, webhooks

__all__ = ["customers", "ledger", "lending", "payments", "webhooks"]
