"""What agents send and are sent on the fast path, as DRF serializers: the API docs'
description of the bodies, and the one statement of their bounds. The fast path does not
build these per request (scheduler.agent_api.bodies validates with their fields, bound
once, and checks agents' usual beats without them); the two agree on every input
(tests/scheduler/test_agent_doors.py)."""

import math
from typing import Any

from rest_framework import serializers

from core.bounds import BoundedIntegerField, json_problem
from scheduler.job_spec_schema import JobSpecField
from scheduler.models import Node

# node_register takes at most 64 GPUs per node: a beat claiming more is not a node's.
GPUS_PER_NODE_MAX = 64
# Each GPU of the node once; the jobs a node runs at once are fewer than its GPUs.
GPUS_LISTED_MAX = GPUS_PER_NODE_MAX
RUNNING_LISTED_MAX = GPUS_PER_NODE_MAX
AGENT_VERSION_MAX = Node._meta.get_field("agent_version").max_length or 64
# One GPU's description from the agent (index, name, memory): a few hundred bytes.
GPU_ENTRY_MAX_DEPTH = 4
GPU_ENTRY_MAX_BYTES = 1024


class FiniteFloatField(serializers.FloatField):
    """A float that is a number: no NaN or infinity (which pass `min_value` and
    `max_value`: NaN compares false with everything), no integer too big for a float."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool):
            self.fail("invalid")
        try:
            value = float(super().to_internal_value(data))
        except OverflowError:
            self.fail("invalid")
        if not math.isfinite(value):
            self.fail("invalid")
        return value


class GpuEntryField(serializers.DictField):
    """One GPU as the agent lists it: a small JSON object (kept in the node's inventory)."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        value = super().to_internal_value(data)
        problem = json_problem(value, max_depth=GPU_ENTRY_MAX_DEPTH,
                               max_bytes=GPU_ENTRY_MAX_BYTES)
        if problem:
            raise serializers.ValidationError(problem)
        return dict(value)


def image_checked(value: str, *, field_name: str) -> str:
    """An image reference an agent reports, held to the agent's own rule for a job's
    image (suanli_agent.workload_spec), or the serializer's refusal naming the field."""
    from suanli_agent.workload_spec import SpecError, image_parse

    try:
        image_parse(value, field_name=field_name)
    except SpecError as error:
        raise serializers.ValidationError(error.message) from error
    return value


class NodeIsolationSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Node.Isolation.choices,
                                   help_text="container: buyers' commands run in containers")
    runtime = serializers.ChoiceField(choices=["", "podman", "docker"], required=False,
                                      default="")
    runtime_version = serializers.RegexField(r"^[A-Za-z0-9.+~_-]{0,64}$", required=False,
                                             default="", allow_blank=True, max_length=64)
    network = serializers.ChoiceField(choices=Node.Network.choices, required=False,
                                      default=Node.Network.NONE)
    host_execution = serializers.BooleanField(required=False, default=False)
    default_image = serializers.CharField(required=False, default="", allow_blank=True,
                                          max_length=255)

    def validate_default_image(self, value: str) -> str:
        return image_checked(value, field_name="isolation.default_image") if value else value


class HeartbeatInputSerializer(serializers.Serializer):
    free_gpus = BoundedIntegerField(max_value=GPUS_PER_NODE_MAX)
    busy_gpus = BoundedIntegerField(max_value=GPUS_PER_NODE_MAX)
    utilization = FiniteFloatField(min_value=0, max_value=1, required=False, default=0)
    agent_version = serializers.CharField(required=False, default="", allow_blank=True,
                                          max_length=AGENT_VERSION_MAX)
    gpus = serializers.ListField(child=GpuEntryField(), required=False, default=list,
                                 max_length=GPUS_LISTED_MAX)
    running = serializers.ListField(child=BoundedIntegerField(), required=False, default=list,
                                    max_length=RUNNING_LISTED_MAX)
    isolation = NodeIsolationSerializer(
        required=False, help_text="how the node runs buyers' commands; sent on the first beat, "
        "after a reconnection and now and then")


class HeartbeatOutputSerializer(serializers.Serializer):
    status = serializers.CharField()
    next_heartbeat_s = serializers.IntegerField()
    lease_due = serializers.BooleanField(
        help_text="the node's lease changed since the node last read it: read it now. "
                  "Agents read it at least every minute whatever this says.")
    server_time = serializers.DateTimeField()


class LeaseAssignmentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    job_id = serializers.IntegerField()
    gpu_count = serializers.IntegerField()
    spec = JobSpecField()
    max_duration_s = serializers.IntegerField(
        help_text="what is left of the job's maximum duration after earlier attempts")
    lease_expires_at = serializers.DateTimeField()


class LeaseOutputSerializer(serializers.Serializer):
    assignments = LeaseAssignmentSerializer(many=True)
    kill = serializers.ListField(child=serializers.IntegerField())
