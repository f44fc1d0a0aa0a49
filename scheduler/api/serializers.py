from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.bounds import INTEGER_MAX, BoundedIntegerField, BoundedJSONField, bounded_json
from scheduler.agent_api.serializers import image_checked
from scheduler.job_spec_schema import JobSpecField
from scheduler.models import Job, Node
from scheduler.services.agent import REASON_MAX_CHARS
from scheduler.services.jobs import spec_validate

GPU_CLASS_NAME_MAX = 64
REGION_MAX = 32
REGIONS_MAX = 32
# A node's labels are a small flat map the provider shows buyers.
LABELS_MAX_DEPTH = 3
LABELS_MAX_BYTES = 4096


class RegionAvailabilitySerializer(serializers.Serializer):
    region = serializers.CharField()
    nodes_online = serializers.IntegerField()
    free_gpus = serializers.IntegerField()
    largest_shape = serializers.IntegerField(help_text="most GPUs one job can get now")


class GpuClassOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    vendor = serializers.CharField()
    vram_gb = serializers.IntegerField()
    on_demand_rate = serializers.IntegerField(help_text="tokens per GPU-hour")
    block_rate = serializers.IntegerField()
    deposit_rate = serializers.IntegerField()
    min_rate = serializers.IntegerField()
    max_rate = serializers.IntegerField()
    usd_per_gpu_hour = serializers.DecimalField(
        max_digits=12, decimal_places=2, allow_null=True,
        help_text="on_demand_rate in US dollars at today's token price (display only)")
    block_usd_per_gpu_hour = serializers.DecimalField(max_digits=12, decimal_places=2,
                                                      allow_null=True)
    deposit_usd_per_gpu_hour = serializers.DecimalField(max_digits=12, decimal_places=2,
                                                        allow_null=True)
    availability = RegionAvailabilitySerializer(many=True)


# What a provider or buyer sends is bounded by its column (core.bounds); the services hold
# the domain's tighter limits (64 GPUs a node or job, a GPU class's rate band) and say so.
class NodeInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    gpu_class = serializers.CharField(max_length=GPU_CLASS_NAME_MAX)
    gpu_count = BoundedIntegerField(min_value=1, max_value=INTEGER_MAX)
    vram_gb = BoundedIntegerField(required=False, min_value=1, max_value=INTEGER_MAX)
    region = serializers.CharField(max_length=32)
    labels = BoundedJSONField(required=False, default=dict, max_depth=LABELS_MAX_DEPTH,
                              max_bytes=LABELS_MAX_BYTES)
    mode = serializers.ChoiceField(choices=Node.Mode.choices, default=Node.Mode.MARKET)
    rate_per_gpu_hour = BoundedIntegerField(required=False, allow_null=True, min_value=1)

    def validate_labels(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be an object of labels.")
        return value


class NodePatchSerializer(serializers.Serializer):
    drain = serializers.BooleanField(required=False)
    rate_per_gpu_hour = BoundedIntegerField(required=False, allow_null=True, min_value=1)


class NodeOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    gpu_class = serializers.CharField(source="gpu_class.name")
    gpu_count = serializers.IntegerField()
    free_gpus = serializers.IntegerField()
    vram_gb = serializers.IntegerField()
    region = serializers.CharField()
    labels = serializers.DictField()
    status = serializers.CharField()
    mode = serializers.CharField()
    rate_per_gpu_hour = serializers.IntegerField(allow_null=True)
    reliability = serializers.IntegerField(help_text="per mille")
    utilization = serializers.FloatField()
    last_heartbeat_at = serializers.DateTimeField(allow_null=True)
    running = serializers.IntegerField(required=False)
    isolation = serializers.CharField(help_text="container, or none: only its own "
                                      "organization's jobs, on the host, if allowed")
    container_runtime = serializers.CharField()
    runtime_version = serializers.CharField()
    network = serializers.CharField(help_text="what the node offers jobs: none or internet")
    host_execution = serializers.BooleanField()
    default_image = serializers.CharField()


class NodeCreatedSerializer(NodeOutputSerializer):
    token = serializers.CharField(help_text="the node's agent token, shown only now")


class JobInputSerializer(serializers.Serializer):
    """Each number is bounded here by its column; job_submit holds the domain's limits
    (at most 64 GPUs, 30 days) and names them in its refusal."""

    spec = JobSpecField()
    gpu_class = serializers.CharField(max_length=GPU_CLASS_NAME_MAX)
    gpu_count = BoundedIntegerField(min_value=0, max_value=INTEGER_MAX)
    max_duration_s = BoundedIntegerField(min_value=0, max_value=INTEGER_MAX)
    # null stays "not given" for these three, as job_submit reads it.
    min_vram_gb = BoundedIntegerField(required=False, allow_null=True, min_value=0,
                                      max_value=INTEGER_MAX)
    regions = serializers.ListField(
        child=serializers.CharField(max_length=REGION_MAX), required=False, allow_null=True,
        max_length=REGIONS_MAX)
    max_price_per_gpu_hour = BoundedIntegerField(required=False, allow_null=True, min_value=0)
    priority = BoundedIntegerField(required=False, allow_null=True, min_value=-INTEGER_MAX - 1,
                                   max_value=INTEGER_MAX)
    block = BoundedIntegerField(required=False, allow_null=True, default=None, min_value=1,
                                help_text="id of a compute block to run in")

    def validate_spec(self, value: Any) -> Any:
        # The spec's own rules first (invalid_spec): they name the very place of a NUL or a
        # bad number, spec.command[2]; then what bounds any JSON, its depth and size.
        spec_validate(value)
        return bounded_json(value, field="spec")


class JobTimelineSerializer(serializers.Serializer):
    """From submission to a running command: when the job was submitted, placed on a node,
    read by that node in its lease, and reported started (its latest attempt's)."""

    submitted_at = serializers.DateTimeField()
    placed_at = serializers.DateTimeField(allow_null=True)
    leased_at = serializers.DateTimeField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)


class JobOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    state = serializers.ChoiceField(choices=Job.State.choices)
    spec = JobSpecField()
    gpu_class = serializers.CharField(source="gpu_class.name")
    gpu_count = serializers.IntegerField()
    min_vram_gb = serializers.IntegerField()
    regions = serializers.JSONField()
    max_duration_s = serializers.IntegerField()
    max_price_per_gpu_hour = serializers.IntegerField(allow_null=True)
    priority = serializers.IntegerField()
    block = serializers.IntegerField(source="reservation_id", allow_null=True)
    rate_per_gpu_hour = serializers.IntegerField()
    fee_bps = serializers.IntegerField(allow_null=True,
                                       help_text="platform fee locked at submission")
    hold_amount = serializers.IntegerField()
    node = serializers.CharField(source="node.name", allow_null=True, default=None)
    node_reliability = serializers.IntegerField(
        source="node.reliability", allow_null=True, default=None,
        help_text="per mille, of the node the job runs or ran on (scheduler.services.reliability)")
    attempts = serializers.IntegerField()
    failure_reason = serializers.CharField()
    exit_code = serializers.IntegerField(allow_null=True, default=None,
                                         help_text="the latest run's exit code")
    image = serializers.CharField(help_text="the image that ran (the node's default image "
                                  "when the spec names none)")
    image_digest = serializers.CharField()
    usage_gpu_seconds = serializers.IntegerField(default=0)
    usage_ai_tokens = serializers.IntegerField(default=0)
    cost = serializers.IntegerField(default=0, help_text="tokens charged so far")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    timeline = serializers.SerializerMethodField()

    @extend_schema_field(JobTimelineSerializer)
    def get_timeline(self, job: Job) -> dict[str, Any]:
        return JobTimelineSerializer({
            "submitted_at": job.created_at,
            "placed_at": getattr(job, "placed_at", None),
            "leased_at": getattr(job, "leased_at", None),
            "started_at": job.started_at,
        }).data


class UsageInputSerializer(serializers.Serializer):
    """A run's cumulative usage. Each figure within its column (seq an integer, the others
    bigint); whether it is possible by the clock the service decides (409
    usage_implausible)."""

    seq = BoundedIntegerField(min_value=1, max_value=INTEGER_MAX,
                              help_text="grows by one with each report the server answered")
    gpu_seconds = BoundedIntegerField(
        help_text="cumulative; at most gpu_count x (seconds since placement + slack) and "
                  "the run's budget + slack")
    ai_tokens = BoundedIntegerField(required=False, default=0, help_text="cumulative")
    image = serializers.CharField(required=False, max_length=255,
                                  help_text="the image the run's container was started from")
    image_digest = serializers.RegexField(r"^sha256:[0-9a-f]{64}$", required=False,
                                          allow_blank=True, max_length=71)

    def validate_image(self, value: str) -> str:
        return image_checked(value, field_name="image")


class UsageOutputSerializer(serializers.Serializer):
    accepted = serializers.BooleanField()
    action = serializers.ChoiceField(choices=["continue", "stop"])
    lease_expires_at = serializers.DateTimeField()


def _exit_code_field(**kwargs: Any) -> BoundedIntegerField:
    # A signal's negative code included: the column is a signed integer.
    return BoundedIntegerField(min_value=-INTEGER_MAX - 1, max_value=INTEGER_MAX, **kwargs)


class CompleteInputSerializer(UsageInputSerializer):
    exit_code = _exit_code_field(required=False, default=0)


class FailInputSerializer(UsageInputSerializer):
    reason = serializers.CharField(required=False, default="", allow_blank=True,
                                   max_length=REASON_MAX_CHARS)
    exit_code = _exit_code_field(required=False, allow_null=True, default=None)


class AssignmentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    state = serializers.CharField()
    job_id = serializers.IntegerField()
