from typing import Any

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from banking.api.idempotency import idempotency_key_from
from banking.api.pagination import StandardPagination
from banking.api.permissions import HasOrganization, IsBuyer, IsProvider
from banking.fiat_display import usd_for_tokens
from banking.roles import Action
from core.bounds import OutOfBounds, bounded_query
from scheduler.agent_api import lease_push
from scheduler.agent_api.answers import Answer
from scheduler.agent_api.bodies import lease_wait_seconds
from scheduler.agent_api.heartbeat import heartbeat_answer
from scheduler.agent_api.lease import lease_answer
from scheduler.agent_api.rate_limit import NodeRateThrottle
from scheduler.agent_api.serializers import (
    HeartbeatInputSerializer,
    HeartbeatOutputSerializer,
    LeaseOutputSerializer,
)
from scheduler.api.authentication import IsNode, NodeTokenAuthentication
from scheduler.api.serializers import (
    AssignmentOutputSerializer,
    CompleteInputSerializer,
    FailInputSerializer,
    GpuClassOutputSerializer,
    JobInputSerializer,
    JobOutputSerializer,
    NodeCreatedSerializer,
    NodeInputSerializer,
    NodeOutputSerializer,
    NodePatchSerializer,
    UsageInputSerializer,
    UsageOutputSerializer,
)
from scheduler.models import Job
from scheduler.selectors import (
    gpu_class_availability,
    gpu_class_list,
    job_get,
    job_list,
    node_get,
    node_list,
)
from scheduler.services.agent import (
    assignment_complete,
    assignment_fail,
    usage_report,
)
from scheduler.services.jobs import job_cancel, job_submit
from scheduler.services.nodes import node_register, node_retire, node_update


def _org_id(request: Request) -> int:
    return int(request.organization.pk)  # type: ignore[attr-defined]


# The calls that authenticate by themselves (no DRF authentication class to read it from)
# state their security requirement: an object, as OpenAPI has it (drf-spectacular's
# annotation says names, which it would put in the schema as they are).
NODE_TOKEN_SECURITY: Any = [{"NodeToken": []}]


class GpuClassListApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses=GpuClassOutputSerializer(many=True),
                   summary="GPU classes with rates and live availability per region")
    def get(self, request: Request) -> Response:
        availability = gpu_class_availability()
        data = [
            {**{f: getattr(c, f) for f in ("id", "name", "vendor", "vram_gb", "on_demand_rate",
                                           "block_rate", "deposit_rate", "min_rate",
                                           "max_rate")},
             "usd_per_gpu_hour": usd_for_tokens(c.on_demand_rate),
             "block_usd_per_gpu_hour": usd_for_tokens(c.block_rate),
             "deposit_usd_per_gpu_hour": usd_for_tokens(c.deposit_rate),
             "availability": [vars(a) for a in availability.get(c.pk, [])]}
            for c in gpu_class_list()
        ]
        return Response(GpuClassOutputSerializer(data, many=True).data)


class NodeListCreateApi(APIView):
    # Read by the schema (the view pages by hand): the cursor and the page's shape.
    pagination_class = StandardPagination
    role_actions = {"POST": Action.NODES}
    permission_classes = [IsProvider]

    @extend_schema(responses=NodeOutputSerializer(many=True), summary="Your nodes")
    def get(self, request: Request) -> Response:
        paginator = StandardPagination()
        page = paginator.paginate_queryset(node_list(provider_id=_org_id(request)), request,
                                           view=self)
        return paginator.get_paginated_response(NodeOutputSerializer(page, many=True).data)

    @extend_schema(request=NodeInputSerializer, responses={201: NodeCreatedSerializer},
                   summary="Register a node; its agent token is returned once")
    def post(self, request: Request) -> Response:
        s = NodeInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        registered = node_register(provider_id=_org_id(request), **s.validated_data)
        node = node_get(provider_id=_org_id(request), node_id=registered.node.pk)
        data = {**NodeOutputSerializer(node).data, "token": registered.token}
        return Response(data, status=201)


class NodeDetailApi(APIView):
    role_actions = {"PATCH": Action.NODES, "DELETE": Action.NODES}
    permission_classes = [IsProvider]

    @extend_schema(responses=NodeOutputSerializer)
    def get(self, request: Request, node_id: int) -> Response:
        return Response(NodeOutputSerializer(node_get(provider_id=_org_id(request),
                                                      node_id=node_id)).data)

    @extend_schema(request=NodePatchSerializer, responses=NodeOutputSerializer,
                   summary="Drain (or undrain) a node, or set its open-market rate")
    def patch(self, request: Request, node_id: int) -> Response:
        s = NodePatchSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        d = s.validated_data
        node_update(
            provider_id=_org_id(request), node_id=node_id, drain=d.get("drain"),
            rate_per_gpu_hour=d.get("rate_per_gpu_hour"),
            clear_rate="rate_per_gpu_hour" in d and d["rate_per_gpu_hour"] is None,
        )
        return Response(NodeOutputSerializer(node_get(provider_id=_org_id(request),
                                                      node_id=node_id)).data)

    @extend_schema(responses={204: None}, summary="Delete an idle node (drain it first)")
    def delete(self, request: Request, node_id: int) -> Response:
        node_retire(provider_id=_org_id(request), node_id=node_id)
        return Response(status=204)


class JobListCreateApi(APIView):
    # Read by the schema (the view pages by hand): the cursor and the page's shape.
    pagination_class = StandardPagination
    role_actions = {"POST": Action.JOBS}
    def get_permissions(self) -> list[Any]:
        return [IsBuyer()] if self.request.method == "POST" else [HasOrganization()]

    @extend_schema(
        parameters=[OpenApiParameter("state", str, description="comma-separated states")],
        responses=JobOutputSerializer(many=True), summary="Your jobs, newest first",
    )
    def get(self, request: Request) -> Response:
        raw = bounded_query(request.query_params, "state", max_length=200) or ""
        states = [s for s in raw.split(",") if s]
        unknown = sorted(set(states) - set(Job.State.values))
        if unknown:
            raise OutOfBounds(f"Unknown state: {', '.join(unknown)}.",
                              fields={"state": [f"One of {', '.join(Job.State.values)}."]})
        paginator = StandardPagination()
        page = paginator.paginate_queryset(
            job_list(organization_id=_org_id(request), states=states), request, view=self
        )
        return paginator.get_paginated_response(JobOutputSerializer(page, many=True).data)

    @extend_schema(
        request=JobInputSerializer, responses={201: JobOutputSerializer},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER),
                    OpenApiParameter("Location", str, OpenApiParameter.HEADER, response=[201],
                                     description="the new job's URL")],
        summary="Submit a job: the rate is locked and its maximum cost held",
    )
    def post(self, request: Request) -> Response:
        s = JobInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        d = dict(s.validated_data)
        job = job_submit(
            organization_id=_org_id(request),
            reservation_id=d.pop("block", None),
            idempotency_key=idempotency_key_from(request, scope="job-submit"),
            **d,
        )
        out = job_get(organization_id=_org_id(request), job_id=job.pk)
        # The created resource named as HTTP says (RFC 9110 §10.2.2): a client follows the
        # job from here without knowing how job URLs are built.
        return Response(JobOutputSerializer(out).data, status=201,
                        headers={"Location": reverse("job-detail", args=[job.pk])})


class JobDetailApi(APIView):
    @extend_schema(responses=JobOutputSerializer)
    def get(self, request: Request, job_id: int) -> Response:
        return Response(JobOutputSerializer(job_get(organization_id=_org_id(request),
                                                    job_id=job_id)).data)


class JobCancelApi(APIView):
    role_actions = {"POST": Action.JOBS}
    @extend_schema(request=None, responses=JobOutputSerializer,
                   summary="Cancel: usage so far is charged, the rest of the hold released")
    def post(self, request: Request, job_id: int) -> Response:
        job_cancel(organization_id=_org_id(request), job_id=job_id)
        return Response(JobOutputSerializer(job_get(organization_id=_org_id(request),
                                                    job_id=job_id)).data)


class _AgentApi(APIView):
    authentication_classes = [NodeTokenAuthentication]
    permission_classes = [IsNode]
    throttle_classes = [NodeRateThrottle]

    def node_id(self, request: Request) -> int:
        return int(request.auth.pk)


class AgentHeartbeatApi(APIView):
    """The same answer as the fast paths in front of Django (scheduler.agent_api.doors),
    which serve this URL under gunicorn and runserver (config.wsgi, config.asgi, and
    WSGI_APPLICATION for runserver); this view serves Django's test client and documents
    the call."""

    # heartbeat_answer authenticates, rate-limits and validates by itself, as the fast
    # path needs it to.
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes: list[type] = []

    @extend_schema(request=HeartbeatInputSerializer, responses=HeartbeatOutputSerializer,
                   auth=NODE_TOKEN_SECURITY)
    def post(self, request: Request) -> Response:
        answer = heartbeat_answer(request.META.get("HTTP_AUTHORIZATION", ""), request.body)
        return Response(answer.body, status=answer.status, headers=answer.headers)


class AgentLeaseApi(APIView):
    """The same answer as the fast paths in front of Django (scheduler.agent_api.doors),
    which serve this URL under gunicorn and runserver; this view serves Django's test
    client and documents the call."""

    # lease_answer authenticates and rate-limits by itself, as the fast paths need it to.
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes: list[type] = []
    schema_error_statuses = (503,)  # a wait asked of a server that holds none

    @extend_schema(
        request=None, responses=LeaseOutputSerializer, auth=NODE_TOKEN_SECURITY,
        parameters=[OpenApiParameter(
            "wait", int, required=False,
            description="Hold the request until the lease changes, at most this many seconds "
                        "(1 to AGENT_LEASE_WAIT_MAX_S); answered {\"changed\": false} if it does "
                        "not. Only the agents' server (config.asgi) holds waits; elsewhere 503 "
                        "lease_push_unavailable.")],
    )
    def post(self, request: Request) -> Response:
        wait = lease_wait_seconds(request.META.get("QUERY_STRING", ""))
        if isinstance(wait, Answer):
            answer = wait
        elif wait is not None:
            answer = lease_push.push_unavailable()
        else:
            answer = lease_answer(request.META.get("HTTP_AUTHORIZATION", ""))
        return Response(answer.body, status=answer.status, headers=answer.headers)


class AgentUsageApi(_AgentApi):
    @extend_schema(request=UsageInputSerializer, responses=UsageOutputSerializer,
                   )
    def post(self, request: Request, assignment_id: int) -> Response:
        s = UsageInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        result = usage_report(node_id=self.node_id(request), assignment_id=assignment_id,
                              **s.validated_data)
        return Response(UsageOutputSerializer(vars(result)).data)


class AgentCompleteApi(_AgentApi):
    @extend_schema(request=CompleteInputSerializer, responses=AssignmentOutputSerializer,
                   )
    def post(self, request: Request, assignment_id: int) -> Response:
        s = CompleteInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        a = assignment_complete(node_id=self.node_id(request), assignment_id=assignment_id,
                                **s.validated_data)
        return Response(AssignmentOutputSerializer(a).data)


class AgentFailApi(_AgentApi):
    @extend_schema(request=FailInputSerializer, responses=AssignmentOutputSerializer,
                   )
    def post(self, request: Request, assignment_id: int) -> Response:
        s = FailInputSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        a = assignment_fail(node_id=self.node_id(request), assignment_id=assignment_id,
                            **s.validated_data)
        return Response(AssignmentOutputSerializer(a).data)
