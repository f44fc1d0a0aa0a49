"""Demo data for the embedded default: an operator, a buyer with tokens and a credit
line, a provider with bank-mode nodes, deposits, earnings, an advance and a paid payout
(see `marketplace.demo_data`).

Safe to run at every start: what exists is kept, capacity is deposited again up to 14 days
ahead; the demo API keys and the bank nodes' tokens are issued anew (the old ones revoked)
because a key is stored hashed and can only be shown when issued.
"""

import json
import os
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from banking.models import ApiKey, Organization
from banking.models.customers import Membership
from banking.services.customers import api_key_issue, membership_add, organization_create
from banking.services.ledger import grant_post
from marketplace.demo_data import (
    HISTORY_DAYS,
    demo_as_of,
    demo_capacity_extend,
    demo_node_tokens,
    demo_seed_first,
)

DEMO_KEY_NAME = "demo (reissued at every start)"


class Command(BaseCommand):
    help = "Seed the embedded demo and print its logins and API keys as one JSON line."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--output", default=str(settings.VAR_DIR / "demo.json"))

    def handle(self, *args: Any, **options: Any) -> None:
        password = os.environ.get("DEMO_ADMIN_PASSWORD", "suanli-admin")
        with transaction.atomic():
            admin = User.objects.filter(username="admin").first()
            if admin is None:
                User.objects.create_superuser("admin", "admin@suanli.local", password)
            buyer = self._org("Demo Buyer Ltd", provider=False)
            provider = self._org("Demo GPU Provider", provider=True)
            for org, name in ((buyer, "buyer"), (provider, "provider")):
                # people log in with their email address, which is their username
                email = f"{name}@suanli.local"
                User.objects.filter(username=name).update(username=email)
                user = User.objects.filter(username=email).first()
                if user is None:
                    user = User.objects.create_user(email, email, password)
                membership_add(organization_id=org.pk, user=user, role=Membership.Role.OWNER)
        # the starting balance came first: the demo's history (a block bought at the top
        # of this hour, past deposits) is written as of its time
        with demo_as_of(timezone.now() - timedelta(days=HISTORY_DAYS)):
            grant_post(organization_id=buyer.pk, amount=5_000_000_000,
                       reason="Demo starting balance", idempotency_key="demo-buyer-start")
        demo_seed_first(buyer=buyer, provider=provider)
        demo_capacity_extend(provider)
        with transaction.atomic():
            keys = {}
            for org, label in ((buyer, "buyer"), (provider, "provider")):
                ApiKey.objects.filter(organization=org, name=DEMO_KEY_NAME,
                                      revoked_at__isnull=True).update(revoked_at=timezone.now())
                keys[label] = api_key_issue(organization_id=org.pk, name=DEMO_KEY_NAME).secret
            bank_nodes = demo_node_tokens(provider)
        info = {
            "admin": {"url": "http://127.0.0.1:8000/admin/", "username": "admin",
                      "password": password},
            "storefront_logins": {"buyer": "buyer@suanli.local",
                                  "provider": "provider@suanli.local", "password": password},
            "buyer": {"organization_id": buyer.pk, "api_key": keys["buyer"]},
            "provider": {"organization_id": provider.pk, "api_key": keys["provider"]},
            "bank_nodes": bank_nodes,
        }
        os.makedirs(os.path.dirname(options["output"]), exist_ok=True)
        # the file holds API keys and node tokens: readable by its owner only
        fd = os.open(options["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(info, fh, indent=2)
        public = {k: v for k, v in info.items() if k != "bank_nodes"}
        self.stdout.write(json.dumps(public))

    def _org(self, name: str, *, provider: bool) -> Organization:
        org = Organization.objects.filter(name=name).first()
        return org or organization_create(name=name, is_buyer=not provider,
                                          is_provider=provider)
