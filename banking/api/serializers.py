from rest_framework import serializers

from banking.models.ledger import AccountPurpose, TransferKind


class WalletOutputSerializer(serializers.Serializer):
    available = serializers.IntegerField(help_text="Spendable tokens.")
    held = serializers.IntegerField(help_text="Tokens set aside for running jobs and payouts.")
    credit_limit = serializers.IntegerField()
    credit_used = serializers.IntegerField()
    debt = serializers.IntegerField(help_text="Owed outside a credit line, e.g. after a refund.")
    owed = serializers.IntegerField(help_text="credit_used + debt")


class StatementFilterSerializer(serializers.Serializer):
    kind = serializers.CharField(required=False, max_length=500,
                                 help_text="comma-separated transfer kinds")
    account = serializers.CharField(required=False, max_length=500,
                                    help_text="comma-separated account purposes")
    date_from = serializers.DateField(required=False)
    date_to = serializers.DateField(required=False)
    format = serializers.ChoiceField(choices=["json", "csv"], required=False, default="json")

    def _split(self, value: str, allowed: list[str], name: str) -> list[str]:
        items = [v.strip() for v in value.split(",") if v.strip()]
        unknown = [v for v in items if v not in allowed]
        if unknown:
            raise serializers.ValidationError(f"Unknown {name}: {', '.join(unknown)}.")
        return items

    def validate_kind(self, value: str) -> list[str]:
        return self._split(value, list(TransferKind.values), "kind")

    def validate_account(self, value: str) -> list[str]:
        return self._split(value, list(AccountPurpose.values), "account")

    def validate(self, attrs: dict) -> dict:
        start, end = attrs.get("date_from"), attrs.get("date_to")
        if start and end and start > end:
            raise serializers.ValidationError({"date_to": ["Must not be before date_from."]})
        return attrs


class StatementEntrySerializer(serializers.Serializer):
    entry_id = serializers.IntegerField(source="id")
    transfer_id = serializers.IntegerField()
    created_at = serializers.DateTimeField(source="transfer.created_at")
    kind = serializers.CharField(source="transfer.kind")
    account = serializers.CharField(source="account.purpose")
    amount = serializers.IntegerField()
    reference = serializers.CharField(source="transfer.reference")
    memo = serializers.CharField(source="transfer.memo")


class TransferEntrySerializer(serializers.Serializer):
    entry_id = serializers.IntegerField(source="id")
    account = serializers.CharField(source="account.purpose")
    amount = serializers.IntegerField()


class TransferDetailSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    kind = serializers.CharField()
    reference = serializers.CharField()
    memo = serializers.CharField()
    reverses_id = serializers.IntegerField(allow_null=True)
    entries = TransferEntrySerializer(many=True, help_text="The caller's entries only.")
