"""Demo data for the embedded default: an operator, a buyer with tokens, a provider.

Safe to run at every start: what exists is kept; the demo API keys are issued anew (the
old ones revoked) because a key is stored hashed and can only be shown when issued.
"""

import json
import os
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from django.db import transaction

from banking.models import ApiKey, Organization
from banking.models.customers import Membership
from banking.services.customers import api_key_issue, membership_add, organization_create
from banking.services.ledger import grant_post

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
            for org, username in ((buyer, "buyer"), (provider, "provider")):
                user = User.objects.filter(username=username).first()
                if user is None:
                    user = User.objects.create_user(username, f"{username}@suanli.local",
                                                    password)
                membership_add(organization_id=org.pk, user=user, role=Membership.Role.OWNER)
            grant_post(organization_id=buyer.pk, amount=5_000_000_000,
                       reason="Demo starting balance", idempotency_key="demo-buyer-start")
            keys = {}
            for org, label in ((buyer, "buyer"), (provider, "provider")):
                ApiKey.objects.filter(organization=org, name=DEMO_KEY_NAME,
                                      revoked_at__isnull=True).update(revoked_at=_now())
                keys[label] = api_key_issue(organization_id=org.pk, name=DEMO_KEY_NAME).secret
        info = {
            "admin": {"url": "http://127.0.0.1:8000/admin/", "username": "admin",
                      "password": password},
            "storefront_logins": {"buyer": "buyer", "provider": "provider",
                                  "password": password},
            "buyer": {"organization_id": buyer.pk, "api_key": keys["buyer"]},
            "provider": {"organization_id": provider.pk, "api_key": keys["provider"]},
        }
        os.makedirs(os.path.dirname(options["output"]), exist_ok=True)
        with open(options["output"], "w") as fh:
            json.dump(info, fh, indent=2)
        self.stdout.write(json.dumps(info))

    def _org(self, name: str, *, provider: bool) -> Organization:
        org = Organization.objects.filter(name=name).first()
        return org or organization_create(name=name, is_buyer=not provider,
                                          is_provider=provider)


def _now() -> Any:
    from django.utils import timezone

    return timezone.now()
