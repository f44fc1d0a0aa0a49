from rest_framework import serializers

from banking.amounts import TOKENS_MAX
from core.bounds import INTEGER_MAX, BoundedIntegerField
from marketplace.models import Block
from scheduler.api.serializers import GPU_CLASS_NAME_MAX


class DepositInputSerializer(serializers.Serializer):
    node = BoundedIntegerField(min_value=1)
    gpu_count = BoundedIntegerField(min_value=0, max_value=INTEGER_MAX)
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class DepositOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    node = serializers.IntegerField(source="node_id")
    gpu_class = serializers.CharField(source="gpu_class.name")
    gpu_count = serializers.IntegerField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    rate_per_gpu_hour = serializers.IntegerField()
    status = serializers.CharField()
    expected = serializers.IntegerField(source="total_yield")
    earned = serializers.IntegerField()
    missed = serializers.IntegerField(source="missed_yield")
    missed_intervals = serializers.IntegerField()
    intervals = serializers.IntegerField()
    intervals_accrued = serializers.IntegerField(source="next_interval")


class AdvanceInputSerializer(serializers.Serializer):
    amount = BoundedIntegerField(min_value=0, max_value=TOKENS_MAX)


class AdvanceOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    amount = serializers.IntegerField()
    outstanding = serializers.IntegerField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()


class AvailabilityQuerySerializer(serializers.Serializer):
    gpu_class = serializers.CharField(max_length=GPU_CLASS_NAME_MAX)
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    gpu_count = BoundedIntegerField(required=False, default=1, min_value=0,
                                    max_value=INTEGER_MAX)


class AvailabilitySlotSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    free_gpus = serializers.IntegerField()


class AvailabilityQuoteSerializer(serializers.Serializer):
    gpu_count = serializers.IntegerField()
    hours = serializers.IntegerField()
    rate_per_gpu_hour = serializers.IntegerField()
    discount_bps = serializers.IntegerField()
    price = serializers.IntegerField()


class AvailabilityOutputSerializer(serializers.Serializer):
    gpu_class = serializers.CharField()
    slots = AvailabilitySlotSerializer(many=True)
    min_free_gpus = serializers.IntegerField()
    quote = AvailabilityQuoteSerializer()


class BlockInputSerializer(serializers.Serializer):
    gpu_class = serializers.CharField(max_length=GPU_CLASS_NAME_MAX)
    gpu_count = BoundedIntegerField(min_value=0, max_value=INTEGER_MAX)
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    payment = serializers.ChoiceField(choices=Block.Payment.choices)
    term_months = BoundedIntegerField(required=False, allow_null=True, min_value=0,
                                      max_value=INTEGER_MAX)


class ScheduleRowSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    due_date = serializers.DateField()
    principal = serializers.IntegerField()
    interest = serializers.IntegerField()


class BlockQuoteOutputSerializer(serializers.Serializer):
    gpu_class = serializers.CharField(source="gpu_class.name")
    gpu_count = serializers.IntegerField()
    hours = serializers.IntegerField()
    rate_per_gpu_hour = serializers.IntegerField()
    discount_bps = serializers.IntegerField()
    price = serializers.IntegerField()
    down_payment = serializers.IntegerField()
    financed = serializers.IntegerField()
    schedule = ScheduleRowSerializer(many=True)


class BlockOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk", help_text="pass as `block` when submitting jobs")
    gpu_class = serializers.CharField(source="gpu_class.name")
    gpu_count = serializers.IntegerField(source="reservation.gpu_count")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField(source="reservation.end")
    status = serializers.CharField(source="reservation.status")
    rate_per_gpu_hour = serializers.IntegerField()
    discount_bps = serializers.IntegerField()
    price = serializers.IntegerField()
    payment = serializers.CharField()
    down_payment = serializers.IntegerField()
    loan = serializers.IntegerField(source="loan_id", allow_null=True)
    sold_back = serializers.IntegerField()


class SellBackInputSerializer(serializers.Serializer):
    """`{"gpu_count": 8, "from": "2026-11-23T14:00:00Z"}`: sell back from this hour to the
    block's end. `start` is accepted as an alias of `from`."""

    gpu_count = BoundedIntegerField(min_value=0, max_value=INTEGER_MAX)
    start = serializers.DateTimeField(required=False, help_text="alias of `from`")

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # `from` is a Python keyword, so it cannot be a class attribute.
        fields["from"] = serializers.DateTimeField(
            required=False, help_text="sell back from this whole hour to the block's end")
        return fields

    def validate(self, attrs: dict) -> dict:
        start = attrs.pop("from", None) or attrs.get("start")
        if start is None:
            raise serializers.ValidationError({"from": ["This field is required."]})
        attrs["start"] = start
        return attrs


class SellBackOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    gpu_count = serializers.IntegerField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    credited = serializers.IntegerField()
    to_loan = serializers.IntegerField(help_text="part of the credit that repaid the loan")
    to_wallet = serializers.IntegerField(help_text="part of the credit paid to the wallet")


class PriceHistorySerializer(serializers.Serializer):
    on_demand_rate = serializers.IntegerField()
    utilization_permille = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class AlertSerializer(serializers.Serializer):
    threshold = BoundedIntegerField(allow_null=True, min_value=0, max_value=TOKENS_MAX)


class StatementQuerySerializer(serializers.Serializer):
    date_from = serializers.DateField(required=False)
    date_to = serializers.DateField(required=False)


class StatementCaptureSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    amount = serializers.IntegerField()


class StatementLineSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    kind = serializers.CharField(help_text="job, earning, or the ledger's transfer kind")
    description = serializers.CharField()
    amount = serializers.IntegerField(help_text="tokens, signed: on wallet plus held")
    usd = serializers.CharField(help_text="the amount in dollars at today's price, e.g. "
                                          "\"≈ $2.49\" (display only)")
    balance = serializers.IntegerField(help_text="wallet plus held after this line")
    job_id = serializers.IntegerField(allow_null=True)
    gpu_class = serializers.CharField()
    gpu_count = serializers.IntegerField()
    duration_s = serializers.IntegerField()
    node = serializers.CharField()
    captures = StatementCaptureSerializer(many=True)
