"""GPU classes, nodes, jobs, reservations, assignments and usage.

Double allocation is impossible in the database itself: `Node.free_gpus` is a counter
with CHECK (0 <= free_gpus <= gpu_count), taken only by conditional updates.
"""

from django.db import models

from banking.models import Hold, Organization


class GpuClass(models.Model):
    """Rates are whole tokens per GPU-hour."""

    name = models.CharField(max_length=64, unique=True)
    vendor = models.CharField(max_length=32, default="NVIDIA")
    vram_gb = models.PositiveIntegerField()
    on_demand_rate = models.BigIntegerField(help_text="tokens per GPU-hour, moves in bounds")
    block_rate = models.BigIntegerField(help_text="tokens per GPU-hour for reserved blocks")
    deposit_rate = models.BigIntegerField(help_text="tokens per GPU-hour paid on bank deposits")
    min_rate = models.BigIntegerField(help_text="lowest on-demand rate")
    max_rate = models.BigIntegerField(help_text="highest on-demand rate")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "GPU class"
        verbose_name_plural = "GPU classes"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(min_rate__gt=0)
                & models.Q(min_rate__lte=models.F("on_demand_rate"))
                & models.Q(on_demand_rate__lte=models.F("max_rate")),
                name="gpuclass_rate_within_bounds",
            ),
            models.CheckConstraint(
                condition=models.Q(block_rate__gt=0) & models.Q(deposit_rate__gt=0),
                name="gpuclass_rates_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Node(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending approval"
        ONLINE = "online", "Online"
        OFFLINE = "offline", "Offline"
        DRAINING = "draining", "Draining"
        DISABLED = "disabled", "Disabled"

    class Mode(models.TextChoices):
        MARKET = "market", "Open market"
        BANK = "bank", "Bank deposit"

    class Isolation(models.TextChoices):
        CONTAINER = "container", "Container"
        NONE = "none", "None (host)"

    class Network(models.TextChoices):
        NONE = "none", "None"
        INTERNET = "internet", "Internet"

    class Flag(models.TextChoices):
        NONE = "", "None"
        IMPLAUSIBLE_USAGE = "implausible_usage", "Disabled: repeated implausible usage"

    provider = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="nodes")
    name = models.CharField(max_length=100)
    gpu_class = models.ForeignKey(GpuClass, on_delete=models.PROTECT, related_name="nodes")
    gpu_count = models.PositiveIntegerField()
    free_gpus = models.IntegerField(default=0)
    vram_gb = models.PositiveIntegerField()
    region = models.CharField(max_length=32, db_index=True)
    labels = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.MARKET)
    rate_per_gpu_hour = models.BigIntegerField(
        null=True, blank=True, help_text="open-market rate; empty: the class's on-demand rate"
    )
    is_approved = models.BooleanField(default=False)
    gpus_reported = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="GPUs its agent reports (nvidia-smi inventory); empty: never reported")
    reliability = models.PositiveIntegerField(default=1000, help_text="per mille, 0-1000")
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    utilization = models.FloatField(default=0.0)
    agent_version = models.CharField(max_length=64, blank=True)
    # How the agent runs buyers' commands, as its heartbeats say: placement gives another
    # organization's command only to a container node, and the internet only where offered.
    isolation = models.CharField(max_length=16, choices=Isolation.choices,
                                 default=Isolation.NONE)
    container_runtime = models.CharField(max_length=16, blank=True)
    runtime_version = models.CharField(max_length=64, blank=True)
    network = models.CharField(max_length=16, choices=Network.choices, default=Network.NONE)
    host_execution = models.BooleanField(
        default=False, help_text="no runtime, but the provider lets its own jobs run on the host")
    default_image = models.CharField(max_length=255, blank=True)
    # The heartbeat rate limit, counted where the heartbeat is written (one statement, no
    # other store to ask): beats in the current fixed window, and which window that is.
    beat_window = models.BigIntegerField(default=0, editable=False)
    beats_in_window = models.PositiveIntegerField(default=0, editable=False)
    # Why the services set the node aside for an operator to look at (admin's filter);
    # kept when the faults that caused it age out of the reliability window.
    flag = models.CharField(max_length=32, choices=Flag.choices, blank=True, default="",
                            db_default="")
    flagged_at = models.DateTimeField(null=True, blank=True)
    token_prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "name"], name="node_name_per_provider"),
            models.CheckConstraint(
                condition=models.Q(free_gpus__gte=0)
                & models.Q(free_gpus__lte=models.F("gpu_count")),
                name="node_free_gpus_within_count",
            ),
            models.CheckConstraint(condition=models.Q(gpu_count__gte=1),
                                   name="node_has_gpus"),
            models.CheckConstraint(
                condition=models.Q(reliability__lte=1000), name="node_reliability_per_mille"
            ),
        ]
        indexes = [models.Index(fields=["status", "gpu_class"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.gpu_class_id} x {self.gpu_count})"


class NodeFault(models.Model):
    """A fault attributable to a node, the evidence its reliability falls with
    (scheduler.services.reliability)."""

    class Kind(models.TextChoices):
        OFFLINE = "offline", "Went silent"
        LOST = "lost", "Lost a running job"
        MISSED_INTERVAL = "missed_interval", "Missed a bank deposit interval"
        IMPLAUSIBLE = "implausible", "Reported implausible usage"

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="faults")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["node", "at"])]

    def __str__(self) -> str:
        return f"{self.kind} of node {self.node_id} at {self.at:%Y-%m-%d %H:%M}"


class PlatformFee(models.Model):
    """The platform's share of on-demand charges, set by an admin globally (no class) or
    per GPU class. Rows are never changed: they are the fee's history, and the latest one
    for a job's class (else the latest global one) is locked into the job at submission."""

    gpu_class = models.ForeignKey(GpuClass, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="platform_fees")
    fee_bps = models.PositiveIntegerField(help_text="basis points of each charge")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(fee_bps__lte=5000),
                                   name="platform_fee_at_most_half"),
        ]

    def __str__(self) -> str:
        scope = self.gpu_class_id or "all classes"
        return f"fee {self.fee_bps} bps for {scope} from {self.created_at:%Y-%m-%d %H:%M}"


class NodeHeartbeat(models.Model):
    """One row per node and minute with a heartbeat: the evidence that a node was online
    when, which the bank's availability yield and reliability are computed from."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="heartbeats")
    at = models.DateTimeField()
    free_gpus = models.PositiveIntegerField()
    busy_gpus = models.PositiveIntegerField()

    class Meta:
        ordering = ["-at"]
        constraints = [
            models.UniqueConstraint(fields=["node", "at"], name="heartbeat_once_per_minute"),
        ]

    def __str__(self) -> str:
        return f"{self.node_id}@{self.at:%H:%M:%S}"


class Reservation(models.Model):
    """GPUs of a class reserved for `[start, end)` (a compute block). Jobs that name it
    are placed first, only on bank nodes and only inside the window, and are not charged."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        CANCELED = "canceled", "Canceled"

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="reservations"
    )
    gpu_class = models.ForeignKey(GpuClass, on_delete=models.PROTECT, related_name="reservations")
    gpu_count = models.PositiveIntegerField()
    start = models.DateTimeField()
    end = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    reference = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-start"]
        constraints = [
            models.CheckConstraint(condition=models.Q(end__gt=models.F("start")),
                                   name="reservation_window_ordered"),
        ]

    def __str__(self) -> str:
        return f"{self.gpu_count} x {self.gpu_class_id} {self.start:%Y-%m-%d %H:%M}"


class Job(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        PLACED = "placed", "Placed"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    class Workload(models.TextChoices):
        SIMULATED = "simulated", "Simulated (runs anywhere)"
        ISOLATED = "isolated", "Command in a container, no network"
        INTERNET = "internet", "Command in a container with internet"

    # Indexed by (organization, state) below, which serves lookups by organization too.
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="jobs",
                                     db_index=False)
    spec = models.JSONField()
    # What the spec needs of a node, set at submission so the placer need not read specs.
    workload = models.CharField(max_length=16, choices=Workload.choices,
                                default=Workload.SIMULATED)
    # The image and digest that ran, as the node's agent reported them.
    image = models.CharField(max_length=255, blank=True)
    image_digest = models.CharField(max_length=80, blank=True)
    # No index of its own: the placer reads a class's queued jobs by job_queue_turn_idx,
    # and every job's placement would write one more index entry.
    gpu_class = models.ForeignKey(GpuClass, on_delete=models.PROTECT, related_name="jobs",
                                  db_index=False)
    gpu_count = models.PositiveIntegerField()
    min_vram_gb = models.PositiveIntegerField(default=0)
    regions = models.JSONField(default=list, blank=True)
    max_duration_s = models.PositiveIntegerField()
    max_price_per_gpu_hour = models.BigIntegerField(null=True, blank=True)
    priority = models.IntegerField(default=0)
    turn = models.BigIntegerField(
        default=0,
        help_text="fair-queueing position within its class and priority: organizations take "
                  "turns, however many jobs each has queued",
    )
    # Indexed where set only (job_reservation_idx): on-demand jobs, nearly all, have none.
    reservation = models.ForeignKey(
        Reservation, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs",
        db_index=False,
    )
    rate_per_gpu_hour = models.BigIntegerField(help_text="locked at submission")
    fee_bps = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="platform fee locked at submission; empty (older jobs): the setting")
    hold = models.OneToOneField(Hold, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="job")
    hold_amount = models.BigIntegerField(default=0)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    failure_reason = models.CharField(max_length=500, blank=True)
    node = models.ForeignKey(Node, null=True, blank=True, on_delete=models.PROTECT,
                             related_name="+")
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The placer's read: queued jobs of a class in placing order.
            models.Index(fields=["gpu_class", "-priority", "turn", "id"],
                         condition=models.Q(state="queued"), name="job_queue_turn_idx"),
            # A submission's turn: the organization's last queued one.
            models.Index(fields=["organization", "gpu_class", "priority", "turn"],
                         condition=models.Q(state="queued"), name="job_org_turn_idx"),
            models.Index(fields=["organization", "state"]),
            models.Index(fields=["reservation"], condition=models.Q(reservation__isnull=False),
                         name="job_reservation_idx"),
        ]
        constraints = [
            # A constraint, not unique=True: keys are matched whole, and unique=True would add
            # a pattern index that every job's insert and state change would write.
            models.UniqueConstraint(fields=["idempotency_key"], name="job_idempotency_key"),
            models.CheckConstraint(condition=models.Q(gpu_count__gte=1), name="job_has_gpus"),
            models.CheckConstraint(condition=models.Q(max_duration_s__gte=1),
                                   name="job_has_duration"),
        ]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.state})"


ACTIVE_JOB_STATES = (Job.State.QUEUED, Job.State.PLACED, Job.State.RUNNING)


class Assignment(models.Model):
    """A lease of a job on a node. `gpu_seconds` is the cumulative usage reported;
    `charged` and `fee` what settlement has captured for it so far."""

    class State(models.TextChoices):
        PLACED = "placed", "Placed"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        LOST = "lost", "Lost"
        CANCELED = "canceled", "Canceled"

    job = models.ForeignKey(Job, on_delete=models.PROTECT, related_name="assignments")
    # Indexed by (node, state) below, which serves lookups by node too.
    node = models.ForeignKey(Node, on_delete=models.PROTECT, related_name="assignments",
                             db_index=False)
    gpu_count = models.PositiveIntegerField()
    rate_per_gpu_hour = models.BigIntegerField(help_text="what this run is charged at")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PLACED)
    lease_expires_at = models.DateTimeField()
    # Defaults in the database too: placement's INSERT writes only what a placement
    # decides and leaves the rest to them (a field added here needs no edit there).
    last_seq = models.PositiveIntegerField(default=0, db_default=0)
    gpu_seconds = models.BigIntegerField(default=0, db_default=0)
    ai_tokens = models.BigIntegerField(default=0, db_default=0)
    settled_gpu_seconds = models.BigIntegerField(default=0, db_default=0)
    settled_seq = models.PositiveIntegerField(default=0, db_default=0)
    charged = models.BigIntegerField(default=0, db_default=0)
    fee = models.BigIntegerField(default=0, db_default=0)
    exit_code = models.IntegerField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True, default="", db_default="")
    created_at = models.DateTimeField(auto_now_add=True)
    # First read by its node in a lease: the step between placement and start that the
    # lease push shortens.
    leased_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Set when settlement could not settle this run's usage (a poison item): the batch
    # goes on without it, and an operator settles it again once mended.
    settlement_parked_at = models.DateTimeField(null=True, blank=True)
    settlement_parked_reason = models.CharField(max_length=500, blank=True, default="",
                                                db_default="")

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["node", "state"]),
            models.Index(fields=["state", "lease_expires_at"]),
            # Settlement's read: assignments with reported usage not yet captured.
            models.Index(fields=["id"], name="assignment_unsettled_idx",
                         condition=models.Q(gpu_seconds__gt=models.F("settled_gpu_seconds"))),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(settled_gpu_seconds__lte=models.F("gpu_seconds")),
                name="assignment_settled_within_reported",
            ),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk} job {self.job_id} on node {self.node_id}"


ACTIVE_ASSIGNMENT_STATES = (Assignment.State.PLACED, Assignment.State.RUNNING)


class UsageRecord(models.Model):
    """A usage report as received: cumulative figures with the agent's sequence number."""

    assignment = models.ForeignKey(Assignment, on_delete=models.PROTECT, related_name="usage")
    seq = models.PositiveIntegerField()
    gpu_seconds = models.BigIntegerField()
    ai_tokens = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["assignment_id", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["assignment", "seq"], name="usage_seq_once"),
        ]

    def __str__(self) -> str:
        return f"usage a{self.assignment_id}#{self.seq}"


class AssignmentLog(models.Model):
    """An attempt's log: its size so far. The bytes are in object storage, one object per
    chunk (`LogChunk`); PostgreSQL keeps only where each chunk is."""

    assignment = models.OneToOneField(Assignment, primary_key=True, on_delete=models.CASCADE,
                                      related_name="log")
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="logs")
    attempt = models.PositiveIntegerField(help_text="1 for the job's first assignment")
    size = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job_id", "attempt"]
        constraints = [
            models.UniqueConstraint(fields=["job", "attempt"], name="log_attempt_once"),
            models.CheckConstraint(condition=models.Q(size__gte=0), name="log_size_positive"),
        ]

    def __str__(self) -> str:
        return f"log of job {self.job_id} attempt {self.attempt} ({self.size} bytes)"


class LogChunk(models.Model):
    """Bytes `[offset, offset + length)` of an attempt's log, stored as `storage_name`."""

    log = models.ForeignKey(AssignmentLog, on_delete=models.CASCADE, related_name="chunks")
    offset = models.BigIntegerField()
    length = models.PositiveIntegerField()
    storage_name = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["log_id", "offset"]
        constraints = [
            models.UniqueConstraint(fields=["log", "offset"], name="log_chunk_offset_once"),
            models.CheckConstraint(condition=models.Q(offset__gte=0) & models.Q(length__gte=1),
                                   name="log_chunk_in_range"),
        ]

    def __str__(self) -> str:
        return f"chunk {self.offset}+{self.length} of log {self.log_id}"


class JobOutput(models.Model):
    """A file the job wrote under /suanli/outputs, uploaded by the node through a URL the
    server signed, so that the node never holds storage credentials."""

    class State(models.TextChoices):
        PENDING = "pending", "Upload pending"
        UPLOADED = "uploaded", "Uploaded"
        FAILED = "failed", "Upload failed"

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="outputs")
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="outputs")
    name = models.CharField(max_length=255)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    storage_name = models.CharField(max_length=400)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    uploaded_at = models.DateTimeField(null=True, blank=True)
    purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["assignment", "name"], name="output_name_once"),
            models.CheckConstraint(condition=models.Q(size__gte=0), name="output_size_positive"),
        ]

    def __str__(self) -> str:
        return f"output {self.name} of job {self.job_id}"
